package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"

	"github.com/dtrain-dev/dtrain/netx/netns"
)

// glooAllReduceResult is what third_party/gloo/allreduce.py --json prints
// from rank 0.
type glooAllReduceResult struct {
	MedianS float64   `json:"median_s"`
	MinS    float64   `json:"min_s"`
	TimesS  []float64 `json:"times_s"`
	Correct bool      `json:"correct"`
}

// runGlooAllReduce times torch.distributed's gloo all_reduce (a ring) on
// the same setup: n local processes on loopback, or rank i in host i of tp
// with the master at host 0.
func runGlooAllReduce(ctx context.Context, python string, tp *netns.Topology, n int, mb float64, iters, warmup int) (allReduceBench, error) {
	script, err := thirdParty("gloo/allreduce.py")
	if err != nil {
		return allReduceBench{}, err
	}
	common := []string{"--mb", strconv.FormatFloat(mb, 'g', -1, 64), "--iters", strconv.Itoa(iters),
		"--warmup", strconv.Itoa(warmup), "--json"}
	var rank0 []byte
	if tp == nil {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, python, append([]string{script, "--launch", strconv.Itoa(n)}, common...)...)
		cmd.Stderr = &stderr
		if rank0, err = cmd.Output(); err != nil {
			return allReduceBench{}, fmt.Errorf("%s: %w: %s", script, err, bytes.TrimSpace(stderr.Bytes()))
		}
	} else if rank0, err = runGlooInNamespaces(ctx, python, script, tp, n, common); err != nil {
		return allReduceBench{}, err
	}
	lines := bytes.Split(bytes.TrimSpace(rank0), []byte("\n"))
	var r glooAllReduceResult
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		return allReduceBench{}, fmt.Errorf("%s printed %q: %w", script, rank0, err)
	}
	if !r.Correct {
		return allReduceBench{}, fmt.Errorf("%s: gloo's sum was wrong", script)
	}
	return allReduceBench{Impl: "gloo", MedianS: r.MedianS, MinS: r.MinS, IterS: r.TimesS}, nil
}

// runGlooInNamespaces runs one allreduce.py peer in each of tp's first n
// hosts and returns rank 0's output.
func runGlooInNamespaces(ctx context.Context, python, script string, tp *netns.Topology, n int, common []string) ([]byte, error) {
	outs := make([]bytes.Buffer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		args := append([]string{script, "--rank", strconv.Itoa(i), "--world-size", strconv.Itoa(n),
			"--master-addr", tp.Addr(0), "--master-port", "29500", "--ifname", netns.Interface}, common...)
		cmd := tp.Command(ctx, i, python, args...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outs[i], &stderr
		wg.Go(func() {
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("gloo peer %d in %s: %w: %s", i, tp.Namespace(i), err, bytes.TrimSpace(stderr.Bytes()))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return outs[0].Bytes(), nil
}
