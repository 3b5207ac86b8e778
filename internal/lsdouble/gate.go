package lsdouble

import "context"

// Gate holds prepare-upload requests until the test answers them, as a
// person who has not tapped accept yet: set Behaviour.Accept to g.Accept,
// read the held offers from Offers, answer them in order with Answer.
type Gate struct {
	offers  chan Offer
	answers chan Decision
}

// NewGate returns a Gate that holds up to 16 offers unread.
func NewGate() *Gate {
	return &Gate{offers: make(chan Offer, 16), answers: make(chan Decision)}
}

// Accept is the Behaviour.Accept hook: it publishes the offer and waits for
// an Answer or for ctx (the sender left, cancelled, or the device closed),
// which declines.
func (g *Gate) Accept(ctx context.Context, o Offer) Decision {
	select {
	case g.offers <- o:
	case <-ctx.Done():
		return Decision{Decline: true}
	}
	select {
	case d := <-g.answers:
		return d
	case <-ctx.Done():
		return Decision{Decline: true}
	}
}

// Offers delivers each held offer once.
func (g *Gate) Offers() <-chan Offer { return g.offers }

// Answer gives d to the oldest held offer, waiting for one up to ctx.
func (g *Gate) Answer(ctx context.Context, d Decision) error {
	select {
	case g.answers <- d:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
