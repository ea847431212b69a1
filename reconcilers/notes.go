package reconcilers

import (
	"context"
	"sync"
)

// Notes carries facts an action learned (the name a replaced database was
// kept under, how long connections were blocked) to the journal, without
// widening every reconciler's Apply signature.
type Notes struct {
	mu sync.Mutex
	m  map[string]any
}

type notesKey struct{}

// WithNotes returns a context that collects notes for one action.
func WithNotes(ctx context.Context) (context.Context, *Notes) {
	n := &Notes{m: map[string]any{}}
	return context.WithValue(ctx, notesKey{}, n), n
}

// Note records k=v for the action running under ctx; a no-op elsewhere.
func Note(ctx context.Context, k string, v any) {
	if n, ok := ctx.Value(notesKey{}).(*Notes); ok {
		n.mu.Lock()
		n.m[k] = v
		n.mu.Unlock()
	}
}

// Map returns the notes, nil when there are none.
func (n *Notes) Map() map[string]any {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) == 0 {
		return nil
	}
	out := make(map[string]any, len(n.m))
	for k, v := range n.m {
		out[k] = v
	}
	return out
}

type interruptKey struct{}

// WithInterrupt marks ctx with a channel that closes when the agent has
// news (the desired file changed): long waits give up early so the new
// generation is acted on, while steps that must finish (a swap) ignore it.
func WithInterrupt(ctx context.Context, ch <-chan struct{}) context.Context {
	return context.WithValue(ctx, interruptKey{}, ch)
}

// Interrupted is the channel set by WithInterrupt, nil (never ready) when
// there is none.
func Interrupted(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(interruptKey{}).(<-chan struct{})
	return ch
}
