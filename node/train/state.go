package train

import "time"

// State is where a run stands, saved as trainer_state.json in every
// checkpoint. Step and Samples fix the learning rate and the data position,
// so a resumed run continues exactly where the checkpoint was taken.
type State struct {
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	Seed    uint64 `json:"seed"`
	Step    int    `json:"step"`    // optimizer steps taken
	Samples int64  `json:"samples"` // training windows consumed: the data position
	Tokens  int64  `json:"tokens"`  // training tokens consumed
	// TrainWindows is the training set's size in windows; the data order is
	// a permutation of that many, so a resumed run must see the same number.
	TrainWindows int64   `json:"train_windows"`
	SeqLen       int     `json:"seq_len"`
	ValLoss      float64 `json:"val_loss,omitempty"` // the last evaluation
	Elapsed      float64 `json:"elapsed_seconds"`    // training time, all processes
	Saved        string  `json:"saved"`              // RFC 3339
}

const stateVersion = 1

// StepEvent reports one optimizer step.
type StepEvent struct {
	Step, MaxSteps int // Step counts steps done, including this one
	Epoch          uint64
	Loss           float64 // mean over the step's micro-batches
	LR, GradNorm   float64
	Tokens         int64 // trained so far, including earlier processes
	TokensPerSec   float64
	StepTime       time.Duration
	DataWait       time.Duration // time this step waited for batches
	Elapsed        time.Duration // training time, including earlier processes
}

// EvalEvent reports a held-out evaluation.
type EvalEvent struct {
	Step    int
	Tokens  int64 // training tokens so far
	Loss    float64
	Counted int // targets evaluated
	Took    time.Duration
}

// CheckpointEvent reports a written checkpoint.
type CheckpointEvent struct {
	Step int
	Dir  string
	Took time.Duration
}

// Observer receives the trainer's events, from the goroutine that runs the
// training loop. A nil method set is not allowed; embed NopObserver.
type Observer interface {
	Step(StepEvent)
	Eval(EvalEvent)
	Checkpoint(CheckpointEvent)
}

// NopObserver ignores every event.
type NopObserver struct{}

func (NopObserver) Step(StepEvent)             {}
func (NopObserver) Eval(EvalEvent)             {}
func (NopObserver) Checkpoint(CheckpointEvent) {}
