package main

// The GPU image cannot be built here (no Docker engine, no GPU), so these
// tests check offline what the Dockerfile promises: what it copies exists,
// what the runtime stage takes from the builder is made there, the runtime
// layout matches the rpaths ($ORIGIN for libdtorch.so, libtorch's build-time
// path), and the entrypoint runs a real dtrain command.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

const repoRoot = "../.."

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	op   string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// dockerStage is one FROM … stage with the ARG and ENV values it sets.
type dockerStage struct {
	image, name string
	instrs      []dockerInstr
	vars        map[string]string
	workdir     string
}

type dockerfile struct {
	global map[string]string // ARGs before the first FROM
	stages []*dockerStage
}

func parseDockerfile(t *testing.T, text string) *dockerfile {
	t.Helper()
	df := &dockerfile{global: map[string]string{}}
	var instrs []dockerInstr
	var cur strings.Builder
	start := 0
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments, also inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		op, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		instrs = append(instrs, dockerInstr{strings.ToUpper(op), strings.TrimSpace(args), start})
		cur.Reset()
	}
	if cur.Len() != 0 {
		t.Fatalf("Dockerfile ends inside a continued instruction (line %d)", start)
	}
	var st *dockerStage
	for _, in := range instrs {
		switch in.op {
		case "FROM":
			f := strings.Fields(in.args)
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform") {
				f = f[1:]
			}
			st = &dockerStage{image: os.Expand(f[0], lookup(df.global)), vars: map[string]string{}, workdir: "/"}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			continue
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			if st == nil {
				df.global[k] = v
				continue
			}
			if v == "" {
				v = df.global[k] // ARG NAME re-declares a global one
			}
			st.vars[k] = os.Expand(v, lookup(st.vars))
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile:%d: ENV %q: use the KEY=value form", in.line, in.args)
				}
				st.vars[k] = os.Expand(v, lookup(st.vars))
			}
		case "WORKDIR":
			st.workdir = path.Join(st.workdir, os.Expand(in.args, lookup(st.vars)))
		}
		if st == nil {
			t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.op)
		}
		if in.op == "COPY" || in.op == "RUN" {
			in.args = os.Expand(in.args, lookup(st.vars))
		}
		st.instrs = append(st.instrs, in)
	}
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a runtime stage", len(df.stages))
	}
	return df
}

func lookup(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// dockerCopy is a COPY instruction: its sources, destination and --from.
type dockerCopy struct {
	from string
	srcs []string
	dst  string
	line int
}

func (st *dockerStage) copies(t *testing.T) []dockerCopy {
	t.Helper()
	var cs []dockerCopy
	for _, in := range st.instrs {
		if in.op != "COPY" {
			continue
		}
		c := dockerCopy{line: in.line}
		f := strings.Fields(in.args)
		for len(f) > 0 && strings.HasPrefix(f[0], "--") {
			if v, ok := strings.CutPrefix(f[0], "--from="); ok {
				c.from = v
			}
			f = f[1:]
		}
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			if err := json.Unmarshal([]byte(strings.Join(f, " ")), &f); err != nil {
				t.Fatalf("Dockerfile:%d: COPY: %v", in.line, err)
			}
		}
		if len(f) < 2 {
			t.Fatalf("Dockerfile:%d: COPY needs a source and a destination", in.line)
		}
		c.srcs, c.dst = f[:len(f)-1], f[len(f)-1]
		cs = append(cs, c)
	}
	return cs
}

// runs is the text of every RUN in the stage.
func (st *dockerStage) runs() []string {
	var rs []string
	for _, in := range st.instrs {
		if in.op == "RUN" {
			rs = append(rs, in.args)
		}
	}
	return rs
}

// jsonArgs is the exec (JSON) form of ENTRYPOINT or CMD.
func (st *dockerStage) jsonArgs(t *testing.T, op string) []string {
	t.Helper()
	var args []string
	for _, in := range st.instrs {
		if in.op == op {
			args = nil
			if err := json.Unmarshal([]byte(in.args), &args); err != nil {
				t.Fatalf("Dockerfile:%d: %s must use the JSON form: %v", in.line, op, err)
			}
		}
	}
	return args
}

func readDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return parseDockerfile(t, string(b))
}

// dockerignore is .dockerignore's patterns, each as Docker cleans it.
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(l, "!")), "/")
		if neg {
			l = "!" + l
		}
		pats = append(pats, l)
	}
	return pats
}

// ignored says whether the build context leaves out rel (slash-separated):
// a pattern matching it or one of its parent directories excludes it, a later
// !pattern takes it back. ("**" patterns are not needed and not handled.)
func ignored(pats []string, rel string) bool {
	out := false
	for _, p := range pats {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		for q := rel; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			if ok, _ := path.Match(p, q); ok {
				out = !neg
				break
			}
		}
	}
	return out
}

func TestDockerfileContextSourcesExist(t *testing.T) {
	df := readDockerfile(t)
	pats := dockerignore(t)
	for _, st := range df.stages {
		for _, c := range st.copies(t) {
			if c.from != "" {
				continue
			}
			for _, src := range c.srcs {
				matches, _ := filepath.Glob(filepath.Join(repoRoot, src))
				if len(matches) == 0 {
					t.Errorf("Dockerfile:%d: COPY %s: not in the repository", c.line, src)
				}
				if src != "." && ignored(pats, path.Clean(src)) {
					t.Errorf("Dockerfile:%d: COPY %s: .dockerignore leaves it out of the build context", c.line, src)
				}
			}
		}
	}
}

func TestDockerfileIgnore(t *testing.T) {
	pats := dockerignore(t)
	// Host build output and a host libtorch must not leak into the image:
	// a stale native/build CMake cache names host paths.
	for _, p := range []string{"bin", "bin/libdtorch.so", "native/build", "native/build-cuda", "third_party/libtorch", ".git"} {
		if !ignored(pats, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "build.sh", "native/CMakeLists.txt", "native/dtorch.h", "cmd/dtrain/main.go", "torch", "third_party/pytorch"} {
		if ignored(pats, p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}

// TestDockerfileBuilderMakesWhatRuntimeCopies checks every COPY --from=<stage>
// against what that stage made: build.sh's outputs, the build context, the
// Go tarball, the libtorch archive.
func TestDockerfileBuilderMakesWhatRuntimeCopies(t *testing.T) {
	df := readDockerfile(t)
	buildSh, err := os.ReadFile(filepath.Join(repoRoot, "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"go build -o bin/dtrain ./cmd/dtrain", "bin/libdtorch.so"} {
		if !strings.Contains(string(buildSh), out) {
			t.Fatalf("build.sh no longer contains %q; update this test", out)
		}
	}
	goroot := goEnvGOROOT(t)
	pats := dockerignore(t)
	runtime := df.stages[len(df.stages)-1]
	for _, c := range runtime.copies(t) {
		if c.from == "" {
			continue
		}
		var b *dockerStage
		for _, st := range df.stages {
			if st.name == c.from {
				b = st
			}
		}
		if b == nil {
			t.Errorf("Dockerfile:%d: COPY --from=%s: no such stage", c.line, c.from)
			continue
		}
		made := builderOutputs(b)
		for _, src := range c.srcs {
			if why := madeBy(b, made, pats, goroot, src); why != "" {
				t.Errorf("Dockerfile:%d: COPY --from=%s %s: %s", c.line, c.from, src, why)
			}
		}
	}
}

// builderOutputs is what the RUNs of b write under its WORKDIR, as paths
// relative to it.
func builderOutputs(b *dockerStage) map[string]bool {
	made := map[string]bool{}
	for _, r := range b.runs() {
		if i := strings.Index(r, "./build.sh"); i >= 0 {
			args := strings.Fields(r[i:])[1:]
			made["bin/libdtorch.so"] = true // every build.sh command builds it
			native := false
			for _, a := range args {
				if a == "&&" || a == ";" || a == "|" {
					break
				}
				native = native || a == "native"
			}
			if !native {
				made["bin/dtrain"] = true
			}
		}
		if regexp.MustCompile(`go build .*-o bin/dtrain\b`).MatchString(r) {
			made["bin/dtrain"] = true
		}
		if regexp.MustCompile(`\bcp \S+ bin/(libdtorch\.so)?\b`).MatchString(r) {
			made["bin/libdtorch.so"] = true
		}
	}
	return made
}

// madeBy says why src is not something stage b has, or "" if it is.
func madeBy(b *dockerStage, made map[string]bool, pats []string, goroot, src string) string {
	if !path.IsAbs(src) {
		return "use an absolute path (COPY --from is relative to the stage's root, not its WORKDIR)"
	}
	runs := strings.Join(b.runs(), "\n")
	if rel, ok := strings.CutPrefix(src, b.workdir+"/"); ok && b.workdir != "/" {
		if made[rel] {
			return ""
		}
		if strings.HasPrefix(rel, "bin/") {
			return "no RUN in the builder makes it (./build.sh, go build -o bin/dtrain)"
		}
		if !b.copiesContextTo(b.workdir) {
			return "the builder does not COPY the build context to " + b.workdir
		}
		if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
			return "not in the repository, and no RUN makes it"
		}
		if ignored(pats, rel) {
			return ".dockerignore leaves it out of the build context"
		}
		return ""
	}
	if rel, ok := strings.CutPrefix(src, "/usr/local/go/"); ok {
		if !regexp.MustCompile(`go\.dev/dl/go[0-9.]+\.linux-amd64\.tar\.gz.*tar -C /usr/local -xz`).MatchString(runs) {
			return "no RUN unpacks the Go tarball into /usr/local"
		}
		if _, err := os.Stat(filepath.Join(goroot, rel)); err != nil {
			return "a Go distribution has no " + rel
		}
		return ""
	}
	if lt := b.vars["LIBTORCH"]; lt != "" && (src == lt || strings.HasPrefix(src, lt+"/")) {
		if path.Base(lt) != "libtorch" || !strings.Contains(runs, "unzip -q /tmp/libtorch.zip -d "+path.Dir(lt)) {
			return "no RUN unpacks the libtorch archive (whose root is libtorch/) to " + lt
		}
		if src != lt+"/lib" {
			return "copy libtorch's lib directory, " + lt + "/lib"
		}
		return ""
	}
	return "nothing in the builder makes it (this test knows build.sh's outputs, the build context, the Go tarball and the libtorch archive)"
}

func (st *dockerStage) copiesContextTo(dir string) bool {
	for _, in := range st.instrs {
		if in.op == "COPY" && !strings.Contains(in.args, "--from") {
			f := strings.Fields(in.args)
			if len(f) == 2 && f[0] == "." && path.Join(st.workdir, f[1]) == dir {
				return true
			}
		}
	}
	return false
}

func goEnvGOROOT(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestDockerfileRuntimeLayout checks the runtime stage against how the
// binaries find their libraries and dtrain finds its corpus.
func TestDockerfileRuntimeLayout(t *testing.T) {
	df := readDockerfile(t)
	runtime := df.stages[len(df.stages)-1]
	dst := map[string]string{} // builder path → runtime path
	for _, c := range runtime.copies(t) {
		if c.from == "" {
			continue
		}
		for _, src := range c.srcs {
			d := c.dst
			if strings.HasSuffix(d, "/") {
				d = path.Join(d, path.Base(src))
			}
			dst[path.Base(path.Dir(src))+"/"+path.Base(src)] = d
			dst[src] = d
		}
	}
	bin, lib := dst["bin/dtrain"], dst["bin/libdtorch.so"]
	if bin == "" || lib == "" {
		t.Fatalf("the runtime stage copies bin/dtrain to %q and bin/libdtorch.so to %q; want both", bin, lib)
	}
	if path.Dir(bin) != path.Dir(lib) {
		t.Errorf("dtrain (%s) and libdtorch.so (%s) must share a directory: dtrain finds the library through its $ORIGIN rpath", bin, lib)
	}
	var builder *dockerStage
	for _, st := range df.stages[:len(df.stages)-1] {
		if st.vars["LIBTORCH"] != "" {
			builder = st
		}
	}
	if builder == nil {
		t.Fatal("no builder stage sets ENV LIBTORCH (build.sh --cuda reads it)")
	}
	if lt := builder.vars["LIBTORCH"] + "/lib"; dst[lt] != lt {
		t.Errorf("libtorch's lib goes to %q in the runtime stage, want %s: libdtorch.so's rpath is libtorch's path in the builder", dst[lt], lt)
	}
	if !regexp.MustCompile(`\./build\.sh\b.*--cuda`).MatchString(strings.Join(builder.runs(), "\n")) {
		t.Error("the builder does not run ./build.sh … --cuda")
	}
	goroot := runtime.vars["DTRAIN_GOROOT"]
	if goroot == "" || dst["/usr/local/go/src"] != goroot+"/src" {
		t.Errorf("DTRAIN_GOROOT=%q, Go sources copied to %q: the built-in corpus needs $DTRAIN_GOROOT/src", goroot, dst["/usr/local/go/src"])
	}

	// The runtime image carries the same CUDA as the builder and as the
	// libtorch archive (cuMMm).
	bImg, rImg := builder.image, runtime.image
	m := regexp.MustCompile(`^nvidia/cuda:(\d+)\.(\d+)\.\d+-`).FindStringSubmatch(bImg)
	if m == nil {
		t.Fatalf("builder image %q: want nvidia/cuda:X.Y.Z-…devel…", bImg)
	}
	if !strings.Contains(bImg, "devel") {
		t.Errorf("builder image %q: want a -devel image (nvcc, CUDA headers)", bImg)
	}
	if cuda := m[1] + "." + m[2] + "."; !strings.HasPrefix(rImg, "nvidia/cuda:"+cuda) || strings.Contains(rImg, "devel") {
		t.Errorf("runtime image %q: want an nvidia/cuda:%s… base or runtime image", rImg, cuda)
	}
	if url, cu := builder.vars["LIBTORCH_URL"], "/cu"+m[1]+m[2]+"/"; !strings.Contains(url, cu) {
		t.Errorf("LIBTORCH_URL %q is not a CUDA %s.%s build (want %s)", url, m[1], m[2], cu)
	}
}

func TestDockerfileGoVersion(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	found := false
	for _, st := range readDockerfile(t).stages {
		if v, ok := st.vars["GO_VERSION"]; ok {
			found = true
			if v != string(m[1]) {
				t.Errorf("Dockerfile GO_VERSION=%s, go.mod says go %s", v, m[1])
			}
		}
	}
	if !found {
		t.Error("no stage declares ARG GO_VERSION")
	}
}

func TestDockerfileEntrypoint(t *testing.T) {
	df := readDockerfile(t)
	runtime := df.stages[len(df.stages)-1]
	if ep := runtime.jsonArgs(t, "ENTRYPOINT"); len(ep) != 1 || ep[0] != "dtrain" {
		t.Errorf("ENTRYPOINT %q, want [\"dtrain\"]", ep)
	}
	found := false
	for _, c := range runtime.copies(t) {
		for _, src := range c.srcs {
			if path.Base(src) == "dtrain" {
				dir := strings.TrimSuffix(c.dst, "/")
				found = true
				if !strings.Contains(":"+runtime.vars["PATH"]+":", ":"+dir+":") {
					t.Errorf("ENTRYPOINT dtrain: dtrain is copied to %s, which is not on the runtime PATH %q", dir, runtime.vars["PATH"])
				}
			}
		}
	}
	if !found {
		t.Error("the runtime stage copies no dtrain")
	}
	cmd := runtime.jsonArgs(t, "CMD")
	if len(cmd) == 0 {
		t.Fatal("no CMD: want a dtrain subcommand (miner)")
	}
	app := newApp()
	var sub *cli.Command
	for _, c := range app.Commands {
		if c.HasName(cmd[0]) {
			sub = c
		}
	}
	if sub == nil {
		t.Fatalf("CMD %q: dtrain has no subcommand %q", cmd, cmd[0])
	}
	flags := map[string]cli.Flag{}
	for _, f := range append(app.Flags, sub.Flags...) {
		for _, n := range f.Names() {
			flags[n] = f
		}
	}
	for i := 1; i < len(cmd); i++ {
		name, hasValue := strings.CutPrefix(cmd[i], "--")
		if !hasValue {
			t.Errorf("CMD %q: %q: want flags after the subcommand", cmd, cmd[i])
			continue
		}
		name, _, inline := strings.Cut(name, "=")
		f, ok := flags[name]
		if !ok {
			t.Errorf("CMD %q: dtrain %s has no flag --%s", cmd, sub.Name, name)
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); !isBool && !inline {
			i++ // its value
		}
	}
}
