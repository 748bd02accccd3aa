package main

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

func plotCommand() *cli.Command {
	return &cli.Command{
		Name:      "plot",
		Usage:     "draw a run's loss and held-out loss against tokens (and, for a swarm, each miner's weight by epoch) into a PNG",
		ArgsUsage: "RUN_DIR|metrics.jsonl",
		Description: "RUN_DIR is a train or miner out_dir (its metrics.jsonl) or a `dtrain swarm` work dir (each miner-N/metrics.jsonl,\n" +
			"and validator-N/weights.jsonl for the weights panel).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the PNG to write"},
		},
		Action: func(c *cli.Context) error {
			in, out := c.Args().First(), c.String("out")
			if c.NArg() != 1 || out == "" {
				return usageErrorf("usage: dtrain plot RUN_DIR|metrics.jsonl --out FILE.png")
			}
			runs, weights, err := readPlotLogs(in)
			if err != nil {
				return err
			}
			if err := drawRunPlot(runs, weights, out); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: %s\n", out, plotSummary(runs, weights))
			return nil
		},
	}
}

// runSeries is one process's losses by tokens trained: a trainer's steps
// and evaluations, a miner's epochs.
type runSeries struct {
	name          string
	peer          string // a miner's peer id, to name its weights
	loss, valLoss plotter.XYs
}

// minerWeights is one miner's weight by epoch, as a validator wrote it.
type minerWeights struct {
	peer string
	xys  plotter.XYs
}

// readPlotLogs reads the logs at path: a metrics.jsonl, a run dir holding
// one, or a swarm work dir (miner-N/metrics.jsonl, validator-N/weights.jsonl).
func readPlotLogs(path string) ([]runSeries, []minerWeights, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		r, err := readRunSeries(path, filepath.Base(filepath.Dir(path)))
		return []runSeries{r}, nil, err
	}
	var runs []runSeries
	if p := filepath.Join(path, "metrics.jsonl"); fileExists(p) {
		r, err := readRunSeries(p, filepath.Base(path))
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, r)
	}
	miners, _ := filepath.Glob(filepath.Join(path, "miner-*", "metrics.jsonl"))
	slices.SortFunc(miners, func(a, b string) int { return naturalCompare(a, b) })
	for _, p := range miners {
		r, err := readRunSeries(p, filepath.Base(filepath.Dir(p)))
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, nil, fmt.Errorf("%s holds no metrics.jsonl, nor miner-N/metrics.jsonl", path)
	}
	var weights []minerWeights
	if ws, _ := filepath.Glob(filepath.Join(path, "validator-*", "weights.jsonl")); len(ws) > 0 {
		slices.SortFunc(ws, naturalCompare)
		if weights, err = readWeights(ws[0]); err != nil {
			return nil, nil, err
		}
	}
	return runs, weights, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// naturalCompare orders paths with numbers by their value: miner-2 before
// miner-10.
func naturalCompare(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// readRunSeries reads one process's losses: "step" and "eval" events of a
// trainer, "epoch" events of a miner. A miner's tokens restart at 0 with
// each process; they are made cumulative over its restarts.
func readRunSeries(path, name string) (runSeries, error) {
	recs, err := metrics.ReadJSONL(path)
	if err != nil {
		return runSeries{}, err
	}
	r := runSeries{name: name}
	var offset, last float64
	for _, rec := range recs {
		num := func(k string) (float64, bool) { v, ok := rec[k].(float64); return v, ok }
		switch rec["event"] {
		case "start":
			if p, ok := rec["peer"].(string); ok {
				r.peer = p
			}
		case "step":
			if t, ok := num("tokens"); ok {
				if l, ok := num("loss"); ok {
					r.loss = append(r.loss, plotter.XY{X: t, Y: l})
				}
			}
		case "eval":
			if t, ok := num("tokens"); ok {
				if l, ok := num("val_loss"); ok {
					r.valLoss = append(r.valLoss, plotter.XY{X: t, Y: l})
				}
			}
		case "epoch":
			t, ok := num("tokens")
			if !ok {
				continue
			}
			if t < last {
				offset += last // a new process of the same miner
			}
			last = t
			x := offset + t
			if l, ok := num("loss"); ok && l > 0 {
				r.loss = append(r.loss, plotter.XY{X: x, Y: l})
			}
			if l, ok := num("val_loss"); ok {
				r.valLoss = append(r.valLoss, plotter.XY{X: x, Y: l})
			}
		}
	}
	if len(r.loss)+len(r.valLoss) == 0 {
		return r, fmt.Errorf("%s: no losses to plot (no step, eval or epoch events)", path)
	}
	return r, nil
}

// readWeights reads a validator's weights.jsonl: each miner's weight by
// epoch.
func readWeights(path string) ([]minerWeights, error) {
	recs, err := metrics.ReadJSONL(path)
	if err != nil {
		return nil, err
	}
	by := map[string]*minerWeights{}
	var order []string
	for _, rec := range recs {
		e, ok := rec["epoch"].(float64)
		ms, _ := rec["miners"].([]any)
		if rec["event"] != "weights" || !ok {
			continue
		}
		for _, m := range ms {
			mm, _ := m.(map[string]any)
			id, _ := mm["miner"].(string)
			w, ok := mm["weight"].(float64)
			if id == "" || !ok {
				continue
			}
			if by[id] == nil {
				by[id] = &minerWeights{peer: id}
				order = append(order, id)
			}
			by[id].xys = append(by[id].xys, plotter.XY{X: e, Y: w})
		}
	}
	out := make([]minerWeights, 0, len(order))
	for _, id := range order {
		out = append(out, *by[id])
	}
	return out, nil
}

// newPanel is an empty plot with a title, axis labels, a grid and its
// legend at the top.
func newPanel(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// drawRunPlot writes a PNG: the losses against tokens, and below them the
// miners' weights by epoch when there are any.
func drawRunPlot(runs []runSeries, weights []minerWeights, out string) error {
	lp := newPanel("loss", "tokens", "nats/token")
	single := len(runs) == 1
	for i, r := range runs {
		col := plotutil.Color(i)
		if single || len(r.valLoss) == 0 {
			if err := addLine(lp, r.loss, col, false, label(r.name, "training loss", single)); err != nil {
				return err
			}
		}
		if err := addLine(lp, r.valLoss, col, true, label(r.name, "held-out loss", single)); err != nil {
			return err
		}
	}
	rows := [][]*plot.Plot{{lp}}
	if len(weights) > 0 {
		wp := newPanel("weight (validator 1)", "epoch", "weight")
		run := map[string]int{} // a miner's run, for its name and colour
		for i, r := range runs {
			if r.peer != "" {
				run[r.peer] = i
			}
		}
		for i, w := range weights {
			name, col := "…"+w.peer[max(0, len(w.peer)-8):], plotutil.Color(len(runs)+i)
			if j, ok := run[w.peer]; ok {
				name, col = runs[j].name, plotutil.Color(j)
			}
			if err := addLine(wp, w.xys, col, false, name); err != nil {
				return err
			}
		}
		rows = append(rows, []*plot.Plot{wp})
	}
	h := 4 * vg.Inch * vg.Length(len(rows))
	img := vgimg.New(8*vg.Inch, h)
	dc := draw.New(img)
	canvases := plot.Align(rows, draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}, dc)
	for i, row := range rows {
		row[0].Draw(canvases[i][0])
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return errors.Join(err, f.Close())
}

func label(name, what string, single bool) string {
	if single {
		return what
	}
	return name + " " + what
}

// addLine adds xys as a line (dashed for held-out loss) with its legend.
func addLine(p *plot.Plot, xys plotter.XYs, col color.Color, dashed bool, name string) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	l.Color, l.Width = col, vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// plotSummary says what a plot holds.
func plotSummary(runs []runSeries, weights []minerWeights) string {
	n, v := 0, 0
	for _, r := range runs {
		n += len(r.loss)
		v += len(r.valLoss)
	}
	s := fmt.Sprintf("%d run(s), %d loss and %d held-out loss points", len(runs), n, v)
	if len(weights) > 0 {
		s += fmt.Sprintf(", the weights of %d miners", len(weights))
	}
	return s
}
