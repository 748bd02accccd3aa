package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/dash"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "print what a running miner, validator or trainer is doing (its /api/status)",
		Description: "Reads GET /api/status from the address the peer serves its dashboard and metrics on\n" +
			"(--http or metrics.addr): its run and epoch, the swarm's epoch, its peers, its link, its last\n" +
			"all-reduce rounds and state loads.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:9100", Usage: "the peer's --http address (host:port or http://host:port)", EnvVars: []string{"DTRAIN_STATUS_ADDR"}},
			&cli.BoolFlag{Name: "json", Usage: "print the JSON as served"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "give up after this long"},
		},
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("status takes no arguments (the peer is --addr), got %q", c.Args().Slice())
	}
	url := c.String("addr")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/api/status"
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError(fmt.Errorf("--addr: %w", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: %w (is a miner, validator or trainer serving --http there?)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s answered %s", url, resp.Status)
	}
	var s dash.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("status: %s is not a dtrain status: %w", url, err)
	}
	if c.Bool("json") {
		_, err := c.App.Writer.Write(body)
		return err
	}
	printStatus(c.App.Writer, s)
	return nil
}

// printStatus writes s for an operator.
func printStatus(w io.Writer, s dash.Status) {
	who := s.Role
	if s.Peer != "" {
		who += " " + s.Peer
	}
	fmt.Fprintf(w, "%s, run %q, up %s\n", who, s.Run, (time.Duration(s.UptimeS) * time.Second).String())
	if l := s.Live; l != nil {
		fmt.Fprintf(w, "epoch %d (swarm at %d)", l.Epoch, l.SwarmEpoch)
		if l.Phase != "" {
			fmt.Fprintf(w, ", %s", l.Phase)
		}
		fmt.Fprintf(w, "; %d peers connected\n", l.Peers)
	} else {
		fmt.Fprintf(w, "last closed epoch %d\n", s.Epoch)
	}
	fmt.Fprintf(w, "%s tokens trained, %.0f tokens/s", fmtCount(s.Tokens), s.TokensPerS)
	if s.UpMbps != nil && s.DownMbps != nil {
		fmt.Fprintf(w, "; link up %.0f Mbit/s, down %.0f Mbit/s", *s.UpMbps, *s.DownMbps)
	}
	fmt.Fprintln(w)
	if s.Role == "validator" {
		fmt.Fprintf(w, "%d miners live of %d seen, %d caught cheating\n", s.Summary.Live, s.Miners, s.Caught)
	}
	if len(s.Rounds) > 0 {
		fmt.Fprintln(w, "\nlast all-reduce rounds:")
		tw := newTable(w)
		fmt.Fprintln(tw, "epoch\tmembers\tcontributors\ttook\tbytes\tago\t")
		for _, r := range s.Rounds {
			took := fmt.Sprintf("%.2f s", r.TookS)
			if r.Err != "" {
				took = "failed"
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Epoch, r.Members, r.Contributors, took, humanBytes(r.Bytes), since(r.Time))
		}
		tw.Flush()
	}
	if len(s.Loads) > 0 {
		fmt.Fprintln(w, "\nstate loads:")
		for _, n := range s.Loads {
			fmt.Fprintf(w, "  %s ago: %s\n", since(n.Time), n.Text)
		}
	}
	if n := s.LastEvent; n != nil {
		fmt.Fprintf(w, "\nlast event, %s ago: %s\n", since(n.Time), n.Text)
	}
}

// newTable is how dtrain prints a table: cells right-aligned (numbers
// line up), two spaces apart; every row's cells end in a tab.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

// since is how long ago t was, as the dashboard says it.
func since(t time.Time) string { return dash.Ago(time.Now(), t) }
