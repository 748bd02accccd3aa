package score

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure: the scorer links neither libp2p nor torch (nor anything of
// this module that does), so node/sim, a validator on any machine, or a
// chain adapter can use it without a network stack or libtorch. The same
// guard as node/allreduce's TestStateMachinesLinkNoLibp2p.
func TestPure(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to list dependencies with")
	}
	const mod = "github.com/dtrain-dev/dtrain/"
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"node/score").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var culprits []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(path, mod) {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "github.com/libp2p/") || imp == mod+"torch" || strings.HasPrefix(imp, mod+"torch/") {
				culprits = append(culprits, strings.TrimPrefix(path, mod)+" imports "+imp)
			}
		}
	}
	if len(culprits) > 0 {
		t.Errorf("node/score links: %s", strings.Join(culprits, "; "))
	}
}

// TestScoringReadsNoClock: the scoring files (all but the sinks) read no
// clock, randomness, files or network, so that the weights are a function
// of the observations alone.
func TestScoringReadsNoClock(t *testing.T) {
	sinks := map[string]bool{"sink.go": true, "httpsink.go": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbiddenImports := []string{"math/rand", "math/rand/v2", "crypto/rand", "os", "net", "net/http", "io", "syscall"}
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || sinks[name] {
			continue
		}
		checked++
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbiddenImports {
				if path == bad {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && clock[sel.Sel.Name] {
					t.Errorf("%s reads the clock: time.%s", name, sel.Sel.Name)
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d files, expected the scoring files", checked)
	}
}
