package netx

import (
	"strings"
	"testing"
	"time"
)

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeWithin returns what Close returns, or an error once Close has run
// past its bound.
func TestCloseWithin(t *testing.T) {
	if err := closeWithin(closerFunc(func() error { return nil }), time.Second); err != nil {
		t.Fatalf("a quick close: %v", err)
	}
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	err := closeWithin(closerFunc(func() error { <-block; return nil }), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not close within") {
		t.Fatalf("a close that hangs: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("returned after %v", took)
	}
}
