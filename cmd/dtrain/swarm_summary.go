package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// swarmSummary is the end of the run, as --json prints it.
type swarmSummary struct {
	Event       string         `json:"event"`
	T           float64        `json:"t"`
	Epochs      int            `json:"epochs"`
	FirstVal    float64        `json:"first_val_loss,omitempty"`
	LastVal     float64        `json:"last_val_loss,omitempty"`
	Tokens      int64          `json:"tokens"`
	BytesSent   int64          `json:"bytes_sent"`
	Miners      []minerSummary `json:"miners"`
	Logs        string         `json:"logs"`
	StoppedWhy  string         `json:"stopped"`
	TokensPerS  float64        `json:"tokens_per_s"`
	FirstValEp  int64          `json:"first_val_epoch"`
	LastValEpch int64          `json:"last_val_epoch"`
}

type minerSummary struct {
	Miner     int     `json:"miner"`
	Peer      string  `json:"peer"`
	Epochs    int     `json:"epochs"`
	Tokens    int64   `json:"tokens"`
	BytesSent int64   `json:"bytes_sent"`
	ValLoss   float64 `json:"val_loss,omitempty"`
	Starts    int     `json:"starts"`
	Late      bool    `json:"late"`
	Loads     int     `json:"state_loads"`
	Exit      string  `json:"exit,omitempty"`
	// UpMbps and DownMbps are the link rates it last announced, as it
	// measured them; 0: none.
	UpMbps   float64 `json:"up_mbps"`
	DownMbps float64 `json:"down_mbps"`
	Role     string  `json:"role,omitempty"`
	// Cheat is the cheat it played (--cheat; "copysource" for the copy
	// cheater's source), "" for an honest miner. Weight, Gate and Strikes
	// are from validator 1's last weights (of WeightEpoch); null without.
	Cheat       string   `json:"cheat"`
	Weight      *float64 `json:"weight"`
	Gate        *float64 `json:"gate,omitempty"`
	Strikes     int      `json:"strikes,omitempty"`
	WeightEpoch *uint64  `json:"weight_epoch,omitempty"`
}

// summary prints what a person wants after the run: how far the loss fell,
// how much was trained and sent, and each miner's share.
func (r *swarmReport) summary(now time.Time, why string) {
	r.flush(now, true)
	el := r.since(now)
	s := swarmSummary{Event: "summary", T: el.Seconds(), Epochs: len(r.printed), Tokens: r.tokens, BytesSent: r.bytes,
		Logs: r.logs, StoppedWhy: why, FirstValEp: -1, LastValEpch: -1}
	if el > 0 {
		s.TokensPerS = float64(r.tokens) / el.Seconds()
	}
	for _, l := range r.printed {
		if l.ValLoss > 0 {
			if s.FirstValEp < 0 {
				s.FirstVal, s.FirstValEp = l.ValLoss, l.Epoch
			}
			s.LastVal, s.LastValEpch = l.ValLoss, l.Epoch
		}
	}
	weights := false
	for _, m := range r.miners {
		ms := minerSummary{Miner: m.idx, Peer: m.peer, Epochs: m.epochs, Tokens: m.tokens,
			BytesSent: m.bytes, ValLoss: m.val, Starts: m.gen, Late: m.late, Loads: m.loads, Exit: m.exit,
			UpMbps: m.up, DownMbps: m.down, Role: m.role, Cheat: m.cheat}
		if w := m.weight; w != nil {
			weights = true
			e := m.weightEpoch
			ms.Weight, ms.Gate, ms.Strikes, ms.WeightEpoch = &w.Weight, &w.Gate, w.Strikes, &e
		}
		s.Miners = append(s.Miners, ms)
	}
	if r.json {
		r.emit(s)
		return
	}
	w := r.w
	epochs := "epochs"
	if s.Epochs == 1 {
		epochs = "epoch"
	}
	fmt.Fprintf(w, "\nsummary (%s): %d swarm %s in %s; %s tokens trained (%s tokens/s); %s sent by all-reduce\n",
		why, s.Epochs, epochs, el.Round(time.Second), fmtCount(s.Tokens), fmtCount(int64(s.TokensPerS)), humanBytes(s.BytesSent))
	if s.FirstValEp >= 0 {
		fmt.Fprintf(w, "held-out loss: %.4f at epoch %d -> %.4f at epoch %d\n", s.FirstVal, s.FirstValEp, s.LastVal, s.LastValEpch)
	}
	wcol := func(m minerSummary) string {
		if !weights {
			return ""
		}
		if m.Weight == nil {
			return fmt.Sprintf(" %7s", "-")
		}
		return fmt.Sprintf(" %7.3f", *m.Weight)
	}
	whead := ""
	if weights {
		whead = fmt.Sprintf(" %7s", "weight")
	}
	fmt.Fprintf(w, "%5s  %-20s %6s %8s %9s %9s %15s%s  %s\n", "miner", "peer", "epochs", "tokens", "sent", "held-out", "up/down Mbit/s", whead, "notes")
	for _, m := range s.Miners {
		val := "-"
		if m.ValLoss > 0 {
			val = fmt.Sprintf("%.4f", m.ValLoss)
		}
		var notes []string
		if m.Late {
			notes = append(notes, "joined late")
		}
		if m.Starts > 1 {
			notes = append(notes, fmt.Sprintf("restarted %d×", m.Starts-1))
		}
		if m.Loads > 0 {
			notes = append(notes, fmt.Sprintf("loaded state %d×", m.Loads))
		}
		if m.Role == "client" {
			notes = append(notes, "client (reduces no span)")
		}
		if m.Exit != "" {
			notes = append(notes, m.Exit)
		}
		if m.Cheat != "" {
			notes = append(notes, "cheat: "+m.Cheat)
		}
		if m.Strikes > 0 {
			notes = append(notes, fmt.Sprintf("caught %d×", m.Strikes))
		}
		link := "-"
		if m.UpMbps > 0 || m.DownMbps > 0 {
			link = fmt.Sprintf("%s/%s", fmtRate(m.UpMbps), fmtRate(m.DownMbps))
		}
		fmt.Fprintf(w, "%5d  %-20s %6d %8s %9s %9s %15s%s  %s\n", m.Miner, shortPeer(m.Peer), m.Epochs, fmtCount(m.Tokens),
			humanBytes(m.BytesSent), val, link, wcol(m), strings.Join(notes, ", "))
	}
	if r.logs != "" {
		fmt.Fprintf(w, "logs: %s\n", r.logs)
	}
}

// shortPeer keeps a peer id's head and tail, enough to tell miners apart.
func shortPeer(p string) string {
	if len(p) <= 20 {
		return p
	}
	return p[:8] + "…" + p[len(p)-6:]
}

func fmtClock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func fmtCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// fmtRate writes a rate in Mbit/s with three significant digits; 0 is "-".
func fmtRate(mbps float64) string {
	switch {
	case mbps <= 0:
		return "-"
	case mbps >= 100:
		return strconv.FormatFloat(mbps, 'f', 0, 64)
	case mbps >= 10:
		return strconv.FormatFloat(mbps, 'f', 1, 64)
	}
	return strconv.FormatFloat(mbps, 'f', 2, 64)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}
