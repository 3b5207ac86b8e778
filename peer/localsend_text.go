package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// LocalSend text messages, both ways. The app (localsend/localsend:
// app/lib/provider/selection/selected_sending_files_provider.dart,
// send_provider.dart, receive_controller.dart; packages/core/src/http/
// server/v2.rs) sends a message as a prepare-upload of one file named
// "<uuid>.txt", of fileType text/plain and the message's UTF-8 length,
// whose preview is the message; a receiver that shows it accepts none of
// the files, which answers 204, and one that does not (an older or
// another implementation) answers 200 with a token, and the sender then
// uploads the message's bytes as the file.

// checkText refuses a LocalSend text message over the rate (TextsPerMinute
// per address, counted with the lanshare protocol's: textLimiter) or the
// size (MaxTextLen, as a lanshare sender's): 0, or the status and message
// to answer with.
func (s *lsServer) checkText(remote netip.Addr, text string) (int, string) {
	if !s.a.texts.allow(remote) {
		return http.StatusTooManyRequests, textsReason
	}
	if len(text) > MaxTextLen {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("message of %s is over this receiver's limit of %s",
			FormatBytes(uint64(len(text))), FormatBytes(MaxTextLen))
	}
	return 0, ""
}

// takeText delivers the text message of a session whose batch b (one
// text entry) the policy accepted, reports it as a transfer, settles the
// strangers' budget, and answers 204 as the app does.
func (s *lsServer) takeText(w http.ResponseWriter, ss *lsSession, b *Batch, text string, charge *strangerCharge) {
	err := b.ReceiveText(0, text)
	tr := b.Close()
	if serr := s.a.strangers.settle(charge, uint64(len(text))); serr != nil && s.a.cfg.Logf != nil {
		s.a.cfg.Logf("%v", serr)
	}
	s.a.reportLocalSend(ss, tr, err)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "could not take the message")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sendText sends items, one text message, as the app sends one: see
// above. A message is never offered twice (it would show twice), so
// there is no retry. Its result is Delivered once the device answered
// 204, or took the upload.
func (s *lsSender) sendText(ctx context.Context, items []Item) (*Report, error) {
	rep := &Report{Peer: s.dev.Alias, Items: items}
	it := items[0]
	err := s.register(ctx)
	s.mu.Lock()
	rep.Peer = s.alias
	s.mu.Unlock()
	if err != nil {
		return rep, err
	}
	sum := sha256.Sum256([]byte(it.Text))
	id := randomUUID()
	dto := localsend.File{ID: id, FileName: randomUUID() + ".txt", Size: int64(len(it.Text)), FileType: "text/plain",
		SHA256: hex.EncodeToString(sum[:]), Preview: it.Text}
	reply, err := s.prepare(ctx, localsend.PrepareUpload{Info: s.info, Files: map[string]localsend.File{id: dto}})
	if err != nil {
		return rep, err
	}
	rep.Sent = uint64(len(it.Text)) // in the offer's preview
	res := proto.Result{Status: proto.Delivered}
	if reply != nil {
		res = s.uploadText(ctx, *reply, dto, it.Text)
	}
	rep.Results = []proto.Result{res}
	return rep, rep.check()
}

// uploadText uploads a message as the file of its offer, for a device
// that answered 200: one that does not take text messages as such.
func (s *lsSender) uploadText(ctx context.Context, reply localsend.PrepareUploadReply, dto localsend.File, text string) proto.Result {
	token, ok := reply.Files[dto.ID]
	if !ok || len(reply.Files) != 1 {
		s.cancel(reply.SessionID)
		return proto.Result{Status: proto.Refused, Code: proto.CodeDenied, Reason: "the receiver did not take the message"}
	}
	uctx, cancel := context.WithTimeout(ctx, s.idle)
	defer cancel()
	q := url.Values{localsend.QuerySessionID: {reply.SessionID}, localsend.QueryFileID: {dto.ID}, localsend.QueryToken: {token}}
	resp, err := s.post(uctx, localsend.PathUpload, q, strings.NewReader(text), int64(len(text)), "application/octet-stream")
	if err != nil {
		s.cancel(reply.SessionID)
		return proto.Result{Status: proto.Failed, Code: proto.CodeAborted, Reason: trimReason(s.connErr("sending the message to", err).Error())}
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		s.cancel(reply.SessionID)
		return proto.Result{Status: proto.Failed, Code: proto.CodeIO, Reason: fmt.Sprintf("the receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return proto.Result{Status: proto.Delivered}
}
