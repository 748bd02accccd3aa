package allreduce

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStateMachinesLinkNoLibp2p: the protocol state machines, and what
// imports them only for their types (matchmaking aliases Role), build
// without libp2p; the transport lives in node/allreduce/p2p. A validator or
// node/sim that drives a Round must not pull in a network stack.
func TestStateMachinesLinkNoLibp2p(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to list dependencies with")
	}
	const mod = "github.com/dtrain-dev/dtrain/"
	for _, pkg := range []string{"node/allreduce", "node/matchmaking", "node/progress", "node/sim"} {
		out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		// Name the packages of this module that import libp2p themselves:
		// those are where the dependency comes in.
		var culprits []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			path, imports, _ := strings.Cut(line, " ")
			if !strings.HasPrefix(path, mod) {
				continue
			}
			for _, imp := range strings.Fields(imports) {
				if strings.HasPrefix(imp, "github.com/libp2p/") {
					culprits = append(culprits, strings.TrimPrefix(path, mod)+" imports "+imp)
					break
				}
			}
		}
		if len(culprits) > 0 {
			t.Errorf("%s links libp2p: %s", pkg, strings.Join(culprits, "; "))
		}
	}
}
