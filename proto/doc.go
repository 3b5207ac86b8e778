// Package proto is lanshare's wire format: a pure codec over io.Reader and
// io.Writer, with no networking, files or logging.
//
// A transfer keeps the classic shape: the sender names what it sends, the
// receiver says "ok", the bytes stream. On one connection:
//
//	sender → receiver: Hello, Offer
//	receiver → sender: Hello, Answer
//	sender → receiver: for each accepted file: its bytes from the answer's
//	                   offset, then FileEnd (with the whole file's digest);
//	                   then Done, then a half-close
//	receiver → sender: Receipt
//
// Only the Receipt means success. The byte layout of every frame, the
// limits and the meaning of each field are in PROTOCOL.md, next to this file.
package proto
