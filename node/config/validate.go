package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
)

// maxRunIDLen bounds run_id: it becomes part of DHT keys, pubsub topics and
// stream protocol names.
const maxRunIDLen = 64

// FieldError is one problem with one key of a config file: an impossible
// value, a value of the wrong type, or a key the config does not have.
type FieldError struct {
	File   string // the config file, when known
	Line   int    // line of Key in File; 0 when unknown or Key took its default
	Key    string // dotted TOML key, e.g. "optim.lr"
	Reason string // what is wrong and, where it helps, what would work
	Got    string // the offending value as a TOML literal; empty when Reason shows it
}

// Error reads "file:line: key: reason (got value)", leaving out what is
// unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Key)
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Got != "" {
		fmt.Fprintf(&b, " (got %s)", e.Got)
	}
	return b.String()
}

// Validate reports every impossible value in t, each as a *FieldError
// ("key: reason (got X)"), joined with errors.Join; nil means t can be
// trained. Checks that need the model's checkpoint (seq_len against an init
// checkpoint's n_positions) are left to the trainer.
func (t Train) Validate() error {
	var c check
	c.runID("run_id", t.RunID)
	if strings.TrimSpace(t.OutDir) == "" {
		c.fail("out_dir", "must not be empty", t.OutDir)
	}
	if !validDevice(t.Device) {
		c.fail("device", "must be cpu, cuda or cuda:N", t.Device)
	}
	if !validPrecision(t.Precision) {
		c.fail("precision", "must be auto, fp32 or bf16", t.Precision)
	}
	c.atLeast("threads", t.Threads, 0)
	t.Model.validate(&c)
	t.Data.validate(&c, t.Model)
	t.Optim.validate(&c, t.Loop.MaxSteps)
	t.Loop.validate(&c, t.Data.SeqLen)
	t.Metrics.validate(&c)
	t.Wandb.validate(&c)
	return errors.Join(c.errs...)
}

// AccumSteps is the number of micro-batches accumulated into one optimizer
// step: batch_tokens / (micro_batch*seq_len). It is 0 when micro_batch or
// seq_len is not positive; Validate rejects such configs.
func (t Train) AccumSteps() int {
	per, ok := mulPositive(t.Loop.MicroBatch, t.Data.SeqLen)
	if !ok {
		return 0
	}
	return t.Loop.BatchTokens / per
}

func (m Model) validate(c *check) {
	if m.Init == "" {
		c.atLeast("model.n_layer", m.NLayer, 1)
		c.atLeast("model.n_head", m.NHead, 1)
		c.atLeast("model.n_embd", m.NEmbd, 1)
		c.atLeast("model.n_positions", m.NPositions, 1)
		c.atLeast("model.vocab_size", m.VocabSize, 1)
		if m.NHead >= 1 && m.NEmbd >= 1 && m.NEmbd%m.NHead != 0 {
			c.fail("model.n_embd", fmt.Sprintf("must be a multiple of model.n_head = %d", m.NHead), m.NEmbd)
		}
	}
	if c.finite("model.dropout", m.Dropout) && (m.Dropout < 0 || m.Dropout >= 1) {
		c.fail("model.dropout", "must be in [0, 1)", m.Dropout)
	}
}

func (d Data) validate(c *check, m Model) {
	if c.finite("data.val_fraction", d.ValFraction) {
		switch {
		case d.Val == "" && (d.ValFraction <= 0 || d.ValFraction > 0.5):
			c.fail("data.val_fraction", "must be in (0, 0.5] when data.val is empty", d.ValFraction)
		case d.Val != "" && (d.ValFraction < 0 || d.ValFraction > 0.5):
			c.fail("data.val_fraction", "must be in [0, 0.5]", d.ValFraction)
		}
	}
	if c.atLeast("data.seq_len", d.SeqLen, 1) && m.Init == "" && m.NPositions >= 1 && d.SeqLen > m.NPositions {
		c.fail("data.seq_len", fmt.Sprintf("must be at most model.n_positions = %d", m.NPositions), d.SeqLen)
	}
}

func (o Optim) validate(c *check, maxSteps int) {
	if c.finite("optim.lr", o.LR) && o.LR <= 0 {
		c.fail("optim.lr", "must be > 0", o.LR)
	}
	if c.finite("optim.min_lr", o.MinLR) {
		switch {
		case o.MinLR < 0:
			c.fail("optim.min_lr", "must be >= 0", o.MinLR)
		case o.LR > 0 && !math.IsInf(o.LR, 0) && o.MinLR > o.LR:
			c.fail("optim.min_lr", "must be at most optim.lr = "+tomlFloat(o.LR), o.MinLR)
		}
	}
	if c.atLeast("optim.warmup_steps", o.WarmupSteps, 0) && maxSteps >= 1 && o.WarmupSteps >= maxSteps {
		c.fail("optim.warmup_steps", fmt.Sprintf("must be less than train.max_steps = %d", maxSteps), o.WarmupSteps)
	}
	if c.finite("optim.weight_decay", o.WeightDecay) && o.WeightDecay < 0 {
		c.fail("optim.weight_decay", "must be >= 0", o.WeightDecay)
	}
	for _, b := range []struct {
		key string
		v   float64
	}{{"optim.beta1", o.Beta1}, {"optim.beta2", o.Beta2}} {
		if c.finite(b.key, b.v) && (b.v < 0 || b.v >= 1) {
			c.fail(b.key, "must be in [0, 1)", b.v)
		}
	}
	if c.finite("optim.eps", o.Eps) && o.Eps <= 0 {
		c.fail("optim.eps", "must be > 0", o.Eps)
	}
	if c.finite("optim.grad_clip", o.GradClip) && o.GradClip < 0 {
		c.fail("optim.grad_clip", "must be >= 0 (0 = no clipping)", o.GradClip)
	}
}

func (l Loop) validate(c *check, seqLen int) {
	c.atLeast("train.max_steps", l.MaxSteps, 1)
	if c.finite("train.max_minutes", l.MaxMinutes) && l.MaxMinutes < 0 {
		c.fail("train.max_minutes", "must be >= 0 (0 = no limit)", l.MaxMinutes)
	}
	if c.atLeast("train.micro_batch", l.MicroBatch, 1) && seqLen >= 1 {
		l.validateBatchTokens(c, seqLen)
	} else {
		c.atLeast("train.batch_tokens", l.BatchTokens, 1)
	}
	c.atLeast("train.eval_every", l.EvalEvery, 0)
	c.atLeast("train.eval_tokens", l.EvalTokens, max(seqLen, 1))
	c.atLeast("train.checkpoint_every", l.CheckpointEvery, 0)
	c.atLeast("train.keep_checkpoints", l.KeepCheckpoints, 1)
	c.atLeast("train.log_every", l.LogEvery, 1)
}

// validateBatchTokens checks that whole micro-batches make up a step, and
// names the nearest sizes that would.
func (l Loop) validateBatchTokens(c *check, seqLen int) {
	per, ok := mulPositive(l.MicroBatch, seqLen)
	if !ok {
		c.fail("train.micro_batch", fmt.Sprintf("micro_batch*seq_len overflows (seq_len = %d)", seqLen), l.MicroBatch)
		return
	}
	switch {
	case l.BatchTokens < per:
		c.fail("train.batch_tokens", fmt.Sprintf("must be at least micro_batch*seq_len = %d", per), l.BatchTokens)
	case l.BatchTokens%per != 0:
		lo := l.BatchTokens / per * per
		c.fail("train.batch_tokens", fmt.Sprintf("must be a multiple of micro_batch*seq_len = %d, e.g. %d or %d",
			per, lo, lo+per), l.BatchTokens)
	}
}

func (m Metrics) validate(c *check) {
	if m.Addr == "" {
		return
	}
	_, port, err := net.SplitHostPort(m.Addr)
	if err != nil {
		c.fail("metrics.addr", "must be empty or host:port, e.g. 127.0.0.1:9100", m.Addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.fail("metrics.addr", "port must be a number in 0..65535", m.Addr)
	}
}

// validPrecision accepts what torch.ParsePrecision accepts; like
// validDevice, it lives here so that config needs no cgo.
func validPrecision(s string) bool {
	switch strings.TrimSpace(strings.ToLower(s)) {
	case "", "auto", "fp32", "bf16":
		return true
	}
	return false
}

// validDevice accepts what torch.ParseDevice accepts, except the empty
// string: cpu, cuda and cuda:N. It lives here so that config needs no cgo.
func validDevice(s string) bool {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "cpu" || s == "cuda" {
		return true
	}
	n, ok := strings.CutPrefix(s, "cuda:")
	if !ok || n == "" || len(n) > 9 {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// mulPositive returns a*b when both are positive and the product fits.
func mulPositive(a, b int) (int, bool) {
	if a < 1 || b < 1 || a > math.MaxInt/b {
		return 0, false
	}
	return a * b, true
}

// check collects the problems Validate finds.
type check struct{ errs []error }

func (c *check) fail(key, reason string, got any) {
	c.errs = append(c.errs, &FieldError{Key: key, Reason: reason, Got: literal(got)})
}

// atLeast reports v < min and says whether v passed.
func (c *check) atLeast(key string, v, min int) bool {
	if v < min {
		c.fail(key, fmt.Sprintf("must be >= %d", min), v)
		return false
	}
	return true
}

// finite reports NaN and ±Inf and says whether v passed; range checks
// follow only for finite values so that each key gets one message.
func (c *check) finite(key string, v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		c.fail(key, "must be a finite number", v)
		return false
	}
	return true
}

func (c *check) runID(key, id string) {
	switch {
	case id == "":
		c.fail(key, "must not be empty", id)
	case len(id) > maxRunIDLen:
		c.fail(key, fmt.Sprintf("must be at most %d bytes long, as it names DHT keys and topics", maxRunIDLen), id)
	case strings.IndexFunc(id, func(r rune) bool { return !safeNameRune(r) }) >= 0:
		c.fail(key, "may contain only letters, digits, '.', '_' and '-', as it names DHT keys and topics", id)
	}
}

func safeNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// literal spells a Go value as a TOML literal for messages, shortening
// long strings.
func literal(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(shorten(v))
	case float64:
		return tomlFloat(v)
	case int:
		return strconv.Itoa(v)
	default:
		return fmt.Sprint(v)
	}
}

// shorten cuts s to at most 60 runes, marking the cut with "...".
func shorten(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit-3]) + "..."
}
