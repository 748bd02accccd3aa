package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The README doc test runs the commands README.md shows, as a new user
// would: every line of its ```sh blocks, in order, in one scratch
// directory (so a file one command makes is there for the next), with
// bin/dtrain this test binary. A command must exit 0. Commands that run
// until stopped (miner, validator, bootstrap) are started in the
// background once they print that they listen, the block's next commands
// run beside them, and at the block's end they are stopped with SIGTERM,
// which must end them with 0. The commands that cannot run here are
// skipped, each with its reason, and the test lists them.

// docSkip are the commands that cannot run in this test, by pattern.
var docSkip = []struct {
	re     *regexp.Regexp
	reason string
}{
	{regexp.MustCompile(`^\./build\.sh && bin/dtrain swarm$`), "builds dtrain (this suite runs after it), then the 3-minute demo: TestSwarmEndToEnd runs the same swarm for less"},
	{regexp.MustCompile(`^\./build\.sh test$`), "runs this suite"},
	{regexp.MustCompile(`--cuda|--device cuda`), "needs an NVIDIA GPU and a CUDA libtorch"},
	{regexp.MustCompile(`^docker `), "needs a Docker engine"},
	{regexp.MustCompile(`bench train --preset`), "GPT-2 small on a CPU takes minutes; TestBenchTrainBF16 runs the same code on a small model"},
	{regexp.MustCompile(`bench allreduce .*--netns`), "minutes of shaped transfers in network namespaces; TestBenchAllReduceLoopback runs the benchmark on loopback"},
	{regexp.MustCompile(`bench state .*--netns`), "a minute of shaped transfers in network namespaces; TestBenchStateLoopback runs the benchmark on loopback"},
}

// docLongRunning are the commands that run until stopped.
var docLongRunning = regexp.MustCompile(`^bin/dtrain (miner|validator|bootstrap)\b`)

// docCommands extracts the command lines of README's ```sh blocks: a line
// continued with a trailing backslash is joined to the next, comments
// (a # after a space, outside quotes) and comment lines are dropped.
func docCommands(readme []byte) [][]string {
	var blocks [][]string
	var cur []string
	in, cont := false, ""
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.HasPrefix(line, "```sh"):
			in, cur = true, nil
			continue
		case in && strings.HasPrefix(line, "```"):
			in = false
			blocks = append(blocks, cur)
			continue
		case !in:
			continue
		}
		line = strings.TrimSpace(stripComment(line))
		if strings.HasSuffix(line, `\`) {
			cont += strings.TrimSpace(strings.TrimSuffix(line, `\`)) + " "
			continue
		}
		line, cont = strings.TrimSpace(cont+line), ""
		if line != "" {
			cur = append(cur, line)
		}
	}
	return blocks
}

// stripComment cuts a shell comment: a # at the start or after a blank,
// outside single and double quotes.
func stripComment(line string) string {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

func TestDocCommands(t *testing.T) {
	blocks := docCommands([]byte(strings.Join([]string{
		"text", "```sh", "bin/dtrain a --x 1   # a comment", "# a comment line", `bin/dtrain b \`, `    --y "#not" 2`, "```",
		"```", "not sh", "```", "```sh", "echo 'it # stays'", "```"}, "\n")))
	want := [][]string{{"bin/dtrain a --x 1", `bin/dtrain b --y "#not" 2`}, {"echo 'it # stays'"}}
	if fmt.Sprint(blocks) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", blocks, want)
	}
}

// syncBuffer is a process's output, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs README's commands: about three minutes")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	must(t, err)
	dir := t.TempDir()
	exe, err := os.Executable()
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "bin", "dtrain"),
		[]byte(fmt.Sprintf("#!/bin/sh\nDTRAIN_TEST_AS_MAIN=1 exec %q \"$@\"\n", exe)), 0o755))
	// The commands run as from a checkout: the benchmarks' PyTorch
	// baselines are in third_party.
	root, err := filepath.Abs(repoRoot)
	must(t, err)
	must(t, os.Symlink(filepath.Join(root, "third_party"), filepath.Join(dir, "third_party")))
	env := append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"), "NO_COLOR=1",
		"DTRAIN_BUILTIN_MAX_FILES=200", "DTRAIN_GOROOT="+goEnvGOROOT(t)) // the built-in corpus: a sample, so that tokenizing it takes seconds
	command := func(line string) *exec.Cmd {
		cmd := exec.Command("bash", "-o", "pipefail", "-c", line)
		cmd.Dir, cmd.Env = dir, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	var skipped, ran []string
	for _, block := range docCommands(readme) {
		type bg struct {
			line string
			cmd  *exec.Cmd
			out  *syncBuffer
			done chan error
		}
		var running []bg
		for _, line := range block {
			if reason := docSkipReason(line); reason != "" {
				skipped = append(skipped, fmt.Sprintf("%s\n      skipped: %s", line, reason))
				continue
			}
			cmd, out := command(line), &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			began := time.Now()
			must(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			if docLongRunning.MatchString(line) {
				// Up once it listens; the block's next commands run beside it.
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(out.String(), "listening") && !strings.Contains(out.String(), "/p2p/") {
					select {
					case err := <-done:
						t.Fatalf("%s\nexited before it listened: %v\n%s", line, err, out.String())
					case <-time.After(100 * time.Millisecond):
					}
					if time.Now().After(deadline) {
						_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
						t.Fatalf("%s\ndid not listen within a minute:\n%s", line, out.String())
					}
				}
				running = append(running, bg{line, cmd, out, done})
				ran = append(ran, line+"\n      started, listening after "+time.Since(began).Round(100*time.Millisecond).String())
				continue
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s\nfailed: %v\n%s", line, err, out.String())
				}
			case <-time.After(5 * time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("%s\ndid not end within 5 minutes:\n%s", line, out.String())
			}
			ran = append(ran, fmt.Sprintf("%s\n      ran in %s", line, time.Since(began).Round(100*time.Millisecond)))
		}
		// The block's long-running commands stop on SIGTERM, with 0.
		for _, r := range running {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
		}
		for _, r := range running {
			select {
			case err := <-r.done:
				if err != nil {
					t.Errorf("%s\nexited with %v on SIGTERM:\n%s", r.line, err, r.out.String())
				}
			case <-time.After(time.Minute):
				_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
				t.Errorf("%s\ndid not stop within a minute of SIGTERM", r.line)
			}
		}
	}
	t.Logf("README commands that ran (%d):\n  %s", len(ran), strings.Join(ran, "\n  "))
	t.Logf("README commands skipped (%d):\n  %s", len(skipped), strings.Join(skipped, "\n  "))
	if len(ran) < 20 {
		t.Errorf("only %d of README's commands ran", len(ran))
	}
}

// docSkipReason is why line cannot run here, or "".
func docSkipReason(line string) string {
	for _, s := range docSkip {
		if s.re.MatchString(line) {
			return s.reason
		}
	}
	return ""
}
