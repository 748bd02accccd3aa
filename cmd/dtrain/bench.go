package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/torch"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "benchmarks that print ratios against a baseline run in the same invocation",
		Subcommands: []*cli.Command{benchDataCommand(), benchNetCommand(), benchAllReduceCommand(), benchStateCommand(), benchDiscoveryCommand(), {
			Name:  "train",
			Usage: "GPT-2 training throughput: dtrain vs PyTorch eager on the same model, batch and threads",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "preset", Usage: "a GPT-2 size instead of --layers/--heads/--embd/--ctx: gpt2 (124M, seq 1024), gpt2-medium (350M)"},
				&cli.IntFlag{Name: "layers", Value: 6},
				&cli.IntFlag{Name: "heads", Value: 6},
				&cli.IntFlag{Name: "embd", Value: 384},
				&cli.IntFlag{Name: "ctx", Value: 256, Usage: "sequence length (and n_positions)"},
				&cli.IntFlag{Name: "vocab", Value: torch.GPT2Vocab},
				&cli.IntFlag{Name: "batch", Value: 8},
				&cli.IntFlag{Name: "steps", Value: 10, Usage: "timed steps"},
				&cli.IntFlag{Name: "warmup", Value: 2, Usage: "untimed steps first"},
				&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N", EnvVars: []string{"DTRAIN_DEVICE"}},
				&cli.StringFlag{Name: "precision", Value: "auto", Usage: "auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16, else fp32), fp32 or bf16; the baseline uses the same (torch.autocast for bf16)", EnvVars: []string{"DTRAIN_PRECISION"}},
				&cli.StringFlag{Name: "python", Value: "/usr/bin/python3", Usage: "interpreter with torch for the baseline"},
				&cli.IntFlag{Name: "attn-block", Value: 256, Usage: "dtrain's causal attention: query rows per block on longer sequences (0: the whole [T,T] scores at once)"},
				&cli.BoolFlag{Name: "no-baseline", Usage: "skip PyTorch eager"},
				&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			},
			Action: benchTrain,
		}},
	}
}

// trainBench is one implementation's measurement.
type trainBench struct {
	Impl       string    `json:"impl"`
	TokensPerS float64   `json:"tokens_per_s"`
	StepMedian float64   `json:"step_s_median"`
	Steps      []float64 `json:"step_s"`
	LossFirst  float64   `json:"loss_first"`
	LossLast   float64   `json:"loss_last"`
	Params     int64     `json:"params"`
	MFU        float64   `json:"mfu"`
	PeakRSS    int64     `json:"peak_rss_bytes"` // the process's resident high-water mark (VmHWM)
}

type trainBenchReport struct {
	Config        torch.Config `json:"config"`
	Batch         int          `json:"batch"`
	Threads       int          `json:"threads"`
	Device        string       `json:"device"`
	Precision     string       `json:"precision"`
	PeakGFLOPS    float64      `json:"matmul_peak_gflops"`
	FLOPsPerToken float64      `json:"flops_per_token"`
	DTrain        trainBench   `json:"dtrain"`
	Baseline      *trainBench  `json:"pytorch_eager,omitempty"`
	Ratio         float64      `json:"ratio,omitempty"`
}

// benchPresets are GPT-2's published sizes: layers, heads, width, context.
var benchPresets = map[string][4]int{
	"gpt2":        {12, 12, 768, 1024},
	"gpt2-medium": {24, 16, 1024, 1024},
}

func benchTrain(c *cli.Context) error {
	cfg := torch.NewConfig(c.Int("layers"), c.Int("heads"), c.Int("embd"), c.Int("ctx"), c.Int("vocab"))
	if name := c.String("preset"); name != "" {
		p, ok := benchPresets[name]
		if !ok {
			return fmt.Errorf("--preset %q: want gpt2 or gpt2-medium", name)
		}
		cfg = torch.NewConfig(p[0], p[1], p[2], p[3], c.Int("vocab"))
	}
	cfg.EmbdPdrop, cfg.AttnPdrop, cfg.ResidPdrop = 0, 0, 0
	if err := cfg.Validate(); err != nil {
		return err
	}
	batch, steps, warmup := c.Int("batch"), c.Int("steps"), c.Int("warmup")
	if batch < 1 || steps < 1 || warmup < 0 {
		return fmt.Errorf("--batch and --steps must be >= 1 and --warmup >= 0")
	}
	if c.Int("attn-block") < 0 {
		return usageErrorf("--attn-block %d: want 0 (the whole [T,T] scores at once) or more rows", c.Int("attn-block"))
	}
	dev, err := torch.ParseDevice(c.String("device"))
	if err != nil {
		return err
	}
	prec, err := torch.ParsePrecision(c.String("precision"), dev)
	if err != nil {
		return err
	}
	r := trainBenchReport{Config: cfg, Batch: batch, Device: dev.String(), Precision: string(prec), FLOPsPerToken: flopsPerToken(cfg)}
	// MFU is measured against what this device's GEMMs reach in the same
	// dtype: a GPU needs a large matmul to approach its peak.
	n := 2048
	if dev.CUDA {
		n = 8192
	}
	if r.PeakGFLOPS, err = torch.MatmulGFLOPS(dev, prec, n, 10); err != nil {
		return err
	}
	r.Threads = torch.Threads()
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "GPT-2 %d layers, %d heads, %d wide, seq %d, batch %d, vocab %d (%s params); %s %s, %d threads\n",
			cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions, batch, cfg.VocabSize, humanCount(torch.NumParams(cfg)), dev, prec, r.Threads)
		fmt.Fprintf(c.App.Writer, "matmul peak measured: %.0f GFLOP/s (%s %d², %s)\n", r.PeakGFLOPS, prec, n, dev)
	}
	if r.DTrain, err = runDTrainBench(cfg, dev, prec, c.Int("attn-block"), batch, steps, warmup); err != nil {
		return err
	}
	r.DTrain.MFU = r.DTrain.TokensPerS * r.FLOPsPerToken / (r.PeakGFLOPS * 1e9)
	if !c.Bool("no-baseline") {
		b, err := runEagerBench(c.Context, c.String("python"), cfg, dev, prec, batch, steps, warmup, r.Threads)
		if err != nil {
			return fmt.Errorf("pytorch baseline: %w (use --no-baseline to skip)", err)
		}
		b.MFU = b.TokensPerS * r.FLOPsPerToken / (r.PeakGFLOPS * 1e9)
		r.Baseline, r.Ratio = &b, r.DTrain.TokensPerS/b.TokensPerS
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(r)
	}
	fmt.Fprintln(c.App.Writer)
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "impl\ttokens/s\tstep median\tMFU\tloss last\tpeak RSS\t")
	for _, b := range []*trainBench{&r.DTrain, r.Baseline} {
		if b != nil {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0fms\t%.1f%%\t%.4f\t%s\t\n", b.Impl, b.TokensPerS, b.StepMedian*1000, 100*b.MFU, b.LossLast, humanBytes(b.PeakRSS))
		}
	}
	tw.Flush()
	if r.Baseline != nil {
		fmt.Fprintf(c.App.Writer, "\ndtrain / pytorch-eager: %.2fx\n", r.Ratio)
	}
	return nil
}

// flopsPerToken counts matmul FLOPs of one training token, forward and
// backward: 6 per weight (wte counted once, as the LM head) plus attention
// scores and values, 12·L·E·T (PaLM, appendix B; nanoGPT's estimate_mfu).
func flopsPerToken(c torch.Config) float64 {
	n := float64(torch.NumParams(c) - int64(c.NPositions*c.NEmbd))
	return 6*n + 12*float64(c.NLayer*c.NEmbd*c.NPositions)
}

// runDTrainBench trains on random tokens: zero grad, forward+backward,
// clip to norm 1, AdamW; the same loop as the PyTorch script.
func runDTrainBench(cfg torch.Config, dev torch.Device, prec torch.Precision, attnBlock, batch, steps, warmup int) (trainBench, error) {
	m, err := torch.NewModel(cfg, dev, 0)
	if err != nil {
		return trainBench{}, err
	}
	defer m.Close()
	if err := m.SetPrecision(prec); err != nil {
		return trainBench{}, err
	}
	if err := m.SetAttentionBlock(attnBlock); err != nil {
		return trainBench{}, err
	}
	opt, err := torch.NewAdamW(m, torch.DefaultAdamW)
	if err != nil {
		return trainBench{}, err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(0, 0))
	out := trainBench{Impl: "dtrain", Params: m.NumParams()}
	for i := range warmup + steps {
		b := torch.Batch{B: batch, T: cfg.NPositions, X: make([]int32, batch*cfg.NPositions), Y: make([]int32, batch*cfg.NPositions)}
		for k := range b.X {
			b.X[k], b.Y[k] = int32(rng.IntN(cfg.VocabSize)), int32(rng.IntN(cfg.VocabSize))
		}
		t0 := time.Now()
		if err := m.ZeroGrad(); err != nil {
			return out, err
		}
		loss, _, err := m.TrainStep(b, 1)
		if err != nil {
			return out, err
		}
		if _, err := m.ClipGradNorm(1); err != nil {
			return out, err
		}
		if err := opt.Step(3e-4); err != nil {
			return out, err
		}
		if i >= warmup {
			out.Steps = append(out.Steps, time.Since(t0).Seconds())
		}
		if i == 0 {
			out.LossFirst = loss
		}
		out.LossLast = loss
	}
	summarize(&out, batch*cfg.NPositions)
	out.PeakRSS = vmHWM()
	return out, nil
}

// vmHWM is this process's resident high-water mark (VmHWM in
// /proc/self/status), 0 where /proc has none. Not getrusage's ru_maxrss:
// after exec, a child's starts from its parent's peak, so the baseline's
// would read dtrain's.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kib << 10
			}
		}
	}
	return 0
}

func summarize(b *trainBench, tokensPerStep int) {
	var total float64
	for _, s := range b.Steps {
		total += s
	}
	b.TokensPerS = float64(tokensPerStep*len(b.Steps)) / total
	sorted := slices.Clone(b.Steps)
	slices.Sort(sorted)
	b.StepMedian = sorted[len(sorted)/2]
}

// runEagerBench runs third_party/pytorch/bench_train.py with the same
// model, batch, steps, threads, device and precision.
func runEagerBench(ctx context.Context, python string, cfg torch.Config, dev torch.Device, prec torch.Precision, batch, steps, warmup, threads int) (trainBench, error) {
	script, err := thirdParty("pytorch/bench_train.py")
	if err != nil {
		return trainBench{}, err
	}
	cmd := exec.CommandContext(ctx, python, script, "--json",
		"--layers", fmt.Sprint(cfg.NLayer), "--heads", fmt.Sprint(cfg.NHead), "--embd", fmt.Sprint(cfg.NEmbd),
		"--ctx", fmt.Sprint(cfg.NPositions), "--vocab", fmt.Sprint(cfg.VocabSize), "--batch", fmt.Sprint(batch),
		"--steps", fmt.Sprint(steps), "--warmup", fmt.Sprint(warmup), "--threads", fmt.Sprint(threads),
		"--device", dev.String(), "--precision", string(prec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return trainBench{}, fmt.Errorf("%s: %w: %s", script, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var b trainBench
	if err := json.Unmarshal(bytes.TrimSpace(outb), &b); err != nil {
		return trainBench{}, fmt.Errorf("%s printed %q: %w", script, outb, err)
	}
	return b, nil
}

// thirdParty finds a file under third_party/: beside the binary's parent
// (bin/dtrain in a checkout), in /usr/share/dtrain, or from the working
// directory.
func thirdParty(rel string) (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "third_party"))
	}
	dirs = append(dirs, "/usr/share/dtrain/third_party", "third_party")
	for _, d := range dirs {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("third_party/%s not found (looked in %v)", rel, dirs)
}
