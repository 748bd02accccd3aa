package dash

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"time"
)

//go:embed assets
var assets embed.FS

// maxStreams bounds the server-sent event streams served at once.
const maxStreams = 32

// Handler serves b's dashboard (see the package doc for its routes).
func Handler(b *Board) http.Handler {
	h := &handler{b: b, streams: make(chan struct{}, maxStreams)}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /parts", h.parts)
	mux.HandleFunc("GET /api/run", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Summary()) })
	mux.HandleFunc("GET /api/epochs", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Points()) })
	mux.HandleFunc("GET /api/miners", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Miners()) })
	mux.HandleFunc("GET /api/rounds", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Rounds()) })
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Notes()) })
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, b.Status()) })
	mux.HandleFunc("GET /api/stream", h.stream)
	return mux
}

type handler struct {
	b       *Board
	streams chan struct{}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}

// view is what the templates render: one snapshot of the board.
type view struct {
	Sum    Summary
	Points []Point
	Miners []MinerRow
	Rounds []RoundRow
	Notes  []Note
	Chart  chart
	Now    time.Time
}

func (h *handler) view() view {
	v := view{Sum: h.b.Summary(), Points: h.b.Points(), Miners: h.b.Miners(), Rounds: h.b.Rounds(), Notes: h.b.Notes(), Now: h.b.now()}
	v.Chart = drawChart(v.Points)
	return v
}

// sections are the page's parts, by element id, each its template.
var sections = []string{"summary", "chart", "miners", "rounds", "notes"}

func (h *handler) page(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, "page", h.view()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) parts(w http.ResponseWriter, _ *http.Request) {
	v := h.view()
	out := make(map[string]string, len(sections))
	for _, s := range sections {
		var buf bytes.Buffer
		if err := pageTmpl.ExecuteTemplate(&buf, s, v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out[s] = buf.String()
	}
	writeJSON(w, out)
}

// stream sends an "update" event with the board's version at every
// change, and a comment every 15 s to keep proxies from closing it.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		http.Error(w, "too many streams", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	send := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	version, changed := h.b.Changed()
	if !send("retry: 3000\n\nevent: update\ndata: " + strconv.FormatUint(version, 10) + "\n\n") {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case <-changed:
			version, changed = h.b.Changed()
			if !send("event: update\ndata: " + strconv.FormatUint(version, 10) + "\n\n") {
				return
			}
			// At most a few updates a second, however fast events come.
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// chart is the loss chart's geometry, drawn by the "chart" template.
type chart struct {
	W, H            int
	Left, Top       float64
	Right, Bottom   float64
	Loss, ValLoss   []pt
	LossPath, Vpath string
	XTicks, YTicks  []tick
	Empty           bool
	Dots            bool // circles per point (up to maxDots points)
}

type pt struct {
	X, Y  float64
	Epoch uint64
	Value float64
}

type tick struct {
	At    float64
	Label string
	Sub   string // tokens under an epoch tick
}

const maxDots = 2000

func drawChart(points []Point) chart {
	c := chart{W: 760, H: 280, Left: 70, Top: 14, Right: 744, Bottom: 240}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range points {
		for _, v := range []*float64{p.Loss, p.ValLoss} {
			if v != nil {
				lo, hi = min(lo, *v), max(hi, *v)
			}
		}
	}
	if len(points) == 0 || math.IsInf(lo, 0) {
		c.Empty = true
		return c
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-0.5, hi+0.5
	}
	pad := (hi - lo) * 0.05
	lo, hi = lo-pad, hi+pad
	e0, e1 := float64(points[0].Epoch), float64(points[len(points)-1].Epoch)
	if e1 <= e0 {
		e0, e1 = e0-1, e1+1
	}
	x := func(e uint64) float64 { return c.Left + (float64(e)-e0)/(e1-e0)*(c.Right-c.Left) }
	y := func(v float64) float64 { return c.Bottom - (v-lo)/(hi-lo)*(c.Bottom-c.Top) }
	var lp, vp bytes.Buffer
	for _, p := range points {
		if p.Loss != nil {
			q := pt{x(p.Epoch), y(*p.Loss), p.Epoch, *p.Loss}
			c.Loss = append(c.Loss, q)
			fmt.Fprintf(&lp, "%s%.1f,%.1f", pathOp(lp.Len()), q.X, q.Y)
		}
		if p.ValLoss != nil {
			q := pt{x(p.Epoch), y(*p.ValLoss), p.Epoch, *p.ValLoss}
			c.ValLoss = append(c.ValLoss, q)
			fmt.Fprintf(&vp, "%s%.1f,%.1f", pathOp(vp.Len()), q.X, q.Y)
		}
	}
	c.LossPath, c.Vpath = lp.String(), vp.String()
	c.Dots = len(points) <= maxDots
	for i := range 5 {
		v := lo + (hi-lo)*float64(i)/4
		c.YTicks = append(c.YTicks, tick{At: y(v), Label: strconv.FormatFloat(v, 'f', 2, 64)})
	}
	n := min(len(points), 6)
	for i := range n {
		p := points[0]
		if n > 1 {
			p = points[i*(len(points)-1)/(n-1)]
		}
		c.XTicks = append(c.XTicks, tick{At: x(p.Epoch), Label: strconv.FormatUint(p.Epoch, 10), Sub: tokens(p.Tokens)})
	}
	return c
}

func pathOp(n int) string {
	if n == 0 {
		return "M"
	}
	return " L"
}

// tokens writes a token count with a unit: 950, 12.3k, 4.56M, 7.89B.
func tokens(n int64) string {
	f := float64(n)
	switch {
	case f >= 1e9:
		return strconv.FormatFloat(f/1e9, 'f', 2, 64) + "B"
	case f >= 1e6:
		return strconv.FormatFloat(f/1e6, 'f', 2, 64) + "M"
	case f >= 1e3:
		return strconv.FormatFloat(f/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// Ago is how long before now t was, in whole seconds, minutes or hours
// ("45s", "3m", "2h"), or "never" for the zero time.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Hour)) + "h"
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago":    Ago,
	"short":  short,
	"tokens": tokens,
	"f3":     func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
	"opt": func(v *float64, prec int) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v, 'f', prec, 64)
	},
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"rate": func(v float64) string {
		if v <= 0 {
			return "–"
		}
		return tokens(int64(math.Round(v)))
	},
	"add": func(a, b float64) float64 { return a + b },
	"sub": func(a, b float64) float64 { return a - b },
}).ParseFS(assets, "assets/page.html.tmpl"))
