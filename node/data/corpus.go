package data

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BuiltinCorpus, given as an input path, names the training data every
// machine that builds dtrain already has: the Go standard library's source
// (see the package documentation).
const BuiltinCorpus = "builtin:gosrc"

// BuiltinMaxFilesEnv caps the builtin corpus to an evenly spaced sample of
// that many files, for quick demos and tests.
const BuiltinMaxFilesEnv = "DTRAIN_BUILTIN_MAX_FILES"

// CorpusInfo describes the builtin corpus on this machine.
type CorpusInfo struct {
	Name      string `json:"name"`       // BuiltinCorpus
	Root      string `json:"root"`       // GOROOT
	GoVersion string `json:"go_version"` // e.g. go1.26.8
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
	MaxFiles  int    `json:"max_files,omitempty"` // the BuiltinMaxFilesEnv cap, if set
}

type corpus struct {
	info  CorpusInfo
	files []InputFile
}

// BuiltinCorpusInfo finds GOROOT and lists the builtin corpus's files.
func BuiltinCorpusInfo() (CorpusInfo, error) {
	c, err := builtinCorpus()
	return c.info, err
}

func builtinCorpus() (corpus, error) {
	root, err := findGOROOT()
	if err != nil {
		return corpus{}, err
	}
	var max int
	if s := os.Getenv(BuiltinMaxFilesEnv); s != "" {
		if max, err = strconv.Atoi(s); err != nil || max < 1 {
			return corpus{}, fmt.Errorf("%s=%q: want a positive file count", BuiltinMaxFilesEnv, s)
		}
	}
	files, err := goSourceFiles(filepath.Join(root, "src"))
	if err != nil {
		return corpus{}, fmt.Errorf("builtin corpus: %w", err)
	}
	if max > 0 && len(files) > max {
		sample := make([]InputFile, max)
		for i := range sample {
			sample[i] = files[i*len(files)/max]
		}
		files = sample
	}
	c := corpus{files: files, info: CorpusInfo{Name: BuiltinCorpus, Root: root, GoVersion: goVersion(root), Files: len(files), MaxFiles: max}}
	for _, f := range files {
		c.info.Bytes += f.Size
	}
	return c, nil
}

// findGOROOT tries $DTRAIN_GOROOT, `go env GOROOT`, then the GOROOT dtrain
// was built with, and returns the first holding a src directory.
func findGOROOT() (string, error) {
	var tried []string
	try := func(root, from string) bool {
		if root == "" {
			return false
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", root, from))
		st, err := os.Stat(filepath.Join(root, "src"))
		return err == nil && st.IsDir()
	}
	if r := os.Getenv("DTRAIN_GOROOT"); try(r, "$DTRAIN_GOROOT") {
		return r, nil
	}
	if r := goEnv("GOROOT"); try(r, "go env GOROOT") {
		return r, nil
	}
	if r := runtime.GOROOT(); try(r, "built-in GOROOT") {
		return r, nil
	}
	what := "no GOROOT known"
	if len(tried) > 0 {
		what = "tried " + strings.Join(tried, ", ")
	}
	return "", fmt.Errorf("builtin corpus: no Go source tree found (%s); install Go, set DTRAIN_GOROOT, or pass your own data", what)
}

// goEnv runs `go env name`, returning "" if there is no go command.
func goEnv(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// goVersion reads the first line of GOROOT/VERSION, else asks the go
// command.
func goVersion(root string) string {
	if b, err := os.ReadFile(filepath.Join(root, "VERSION")); err == nil {
		if v, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(v, "go") {
			return strings.TrimSpace(v)
		}
	}
	if v := goEnv("GOVERSION"); v != "" {
		return v
	}
	return "unknown"
}

// goSourceFiles lists the corpus under GOROOT/src: every .go file except
// tests (*_test.go), testdata/ and vendor/ trees, directories Go ignores
// (_ or . prefix), and generated files (a "Code generated ... DO NOT EDIT."
// line before the package clause: tables and machine output, not the
// language as people write it). Sorted by path.
func goSourceFiles(src string) ([]InputFile, error) {
	var files []InputFile
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != src && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		gen, err := isGenerated(p)
		if err != nil || gen {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, InputFile{Path: p, Format: FormatText, Size: st.Size(), ModTime: st.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go source files in %s", src)
	}
	slices.SortFunc(files, func(a, b InputFile) int {
		return strings.Compare(filepath.ToSlash(a.Path), filepath.ToSlash(b.Path))
	})
	return files, nil
}

// generatedRe is Go's convention for generated files (go.dev/s/generatedcode).
var generatedRe = regexp.MustCompile(`^// Code generated .* DO NOT EDIT\.$`)

func isGenerated(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("package ")) {
			return false, nil
		}
		if generatedRe.Match(line) {
			return true, nil
		}
	}
	return false, nil // a scan error (a huge line) just ends the header
}
