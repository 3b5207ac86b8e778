package discovery

import "github.com/miekg/dns"

// splitQuery builds a query for questions with the known answers, split
// across as many messages as it takes so that none packs to more than
// limit bytes (RFC 6762 §7.2): the first carries the questions, every
// message but the last has the TC bit, which tells responders that more
// known answers follow and to wait for them. A single known answer too big
// for limit (never one of ours) is left out.
func splitQuery(questions []dns.Question, known []dns.RR, limit int) []*dns.Msg {
	newMsg := func(first bool) *dns.Msg {
		m := new(dns.Msg)
		if first {
			m.Question = questions
		}
		m.Compress = true
		return m
	}
	m := newMsg(true)
	out := []*dns.Msg{m}
	for _, rr := range known {
		m.Answer = append(m.Answer, rr)
		if m.Len() <= limit {
			continue
		}
		m.Answer = m.Answer[:len(m.Answer)-1]
		next := newMsg(false)
		next.Answer = []dns.RR{rr}
		if next.Len() > limit {
			continue
		}
		m.Truncated = true
		m, out = next, append(out, next)
	}
	return out
}
