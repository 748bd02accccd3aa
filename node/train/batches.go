package train

import (
	"context"
	"fmt"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/torch"
)

// batchStream produces micro-batches ahead of the training loop, in data
// order from position start, so that reading the shards overlaps with the
// forward and backward passes. Sample c is window order.Window(c/W, c%W):
// epoch e is the e-th permutation of the W windows (data.Order), read from
// its start.
type batchStream struct {
	ds    *data.Dataset
	order data.Order
	micro int
	out   chan batchOrErr
}

type batchOrErr struct {
	b   torch.Batch
	err error
}

func startBatches(ctx context.Context, ds *data.Dataset, order data.Order, micro int, start int64, ahead int) *batchStream {
	s := &batchStream{ds: ds, order: order, micro: micro, out: make(chan batchOrErr, ahead)}
	go s.run(ctx, start)
	return s
}

func (s *batchStream) run(ctx context.Context, c int64) {
	defer close(s.out)
	w, t := s.order.Windows(), s.ds.SeqLen()
	for {
		b := torch.Batch{B: s.micro, T: t, X: make([]int32, s.micro*t), Y: make([]int32, s.micro*t)}
		var err error
		for i := 0; i < s.micro && err == nil; i, c = i+1, c+1 {
			win := s.order.Window(uint64(c/w), c%w)
			err = s.ds.Window(win, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t])
		}
		select {
		case s.out <- batchOrErr{b, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// next returns the next micro-batch.
func (s *batchStream) next(ctx context.Context) (torch.Batch, error) {
	select {
	case r, ok := <-s.out:
		if !ok {
			return torch.Batch{}, fmt.Errorf("batches: %w", context.Cause(ctx))
		}
		return r.b, r.err
	case <-ctx.Done():
		return torch.Batch{}, context.Cause(ctx)
	}
}

// HeldOutLoss evaluates the model on n windows of ds spread evenly over it,
// the same ones every time, micro at a time, and returns the mean loss per
// token and the tokens counted.
func HeldOutLoss(m *torch.Model, ds *data.Dataset, n int64, micro int) (float64, int, error) {
	n = min(n, ds.Len())
	t := ds.SeqLen()
	var sum float64
	var count int
	for first := int64(0); first < n; first += int64(micro) {
		bs := int(min(int64(micro), n-first))
		b := torch.Batch{B: bs, T: t, X: make([]int32, bs*t), Y: make([]int32, bs*t)}
		for i := 0; i < bs; i++ {
			win := (first + int64(i)) * ds.Len() / n
			if err := ds.Window(win, b.X[i*t:(i+1)*t], b.Y[i*t:(i+1)*t]); err != nil {
				return 0, 0, err
			}
		}
		s, c, err := m.EvalLoss(b)
		if err != nil {
			return 0, 0, err
		}
		sum, count = sum+s, count+c
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("evaluation: no tokens")
	}
	return sum / float64(count), count, nil
}
