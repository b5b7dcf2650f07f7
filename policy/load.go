package policy

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DefaultPolicy holds the shipped policy, rego/*.rego, including its tests.
//
//go:embed rego/*.rego
var DefaultPolicy embed.FS

// The documents the gateway queries.
const (
	// DecisionQuery is the decision document: allow, reason, fields and
	// consent_required.
	DecisionQuery = "data.sluice.decision"
	// RowQuery is partially evaluated with input.record unknown; its
	// residual becomes the row Condition.
	RowQuery = "data.sluice.row == true"
)

var (
	decisionRef = ast.MustParseRef("data.sluice.decision")
	rowRef      = ast.MustParseRef("data.sluice.row")
)

// embeddedPrefix names embedded files in errors and test reports as they
// are named in the repository.
const embeddedPrefix = "policy/rego/"

// ErrCompile is wrapped by every error about a policy that does not parse,
// compile or define the documents sluice queries.
var ErrCompile = errors.New("policy does not compile")

// CompileError lists the problems of a policy that does not compile, each
// naming file and line:
//
//	policy: policy/rego/sluice.rego:42: rego_parse_error: unexpected assign token
type CompileError struct {
	Errs ast.Errors
}

func (e *CompileError) Error() string {
	if len(e.Errs) == 1 {
		return "policy: " + e.Errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d errors:", len(e.Errs))
	for _, err := range e.Errs {
		b.WriteString("\n\t")
		b.WriteString(strings.ReplaceAll(err.Error(), "\n", "\n\t"))
	}
	return b.String()
}

func (e *CompileError) Unwrap() error { return ErrCompile }

// file is one .rego file of a policy.
type file struct {
	name string // base name, e.g. "sluice.rego": what the revision hashes
	path string // as shown in errors: policy/rego/sluice.rego or DIR/sluice.rego
	data []byte
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// readFiles reads the top-level .rego files of dir, or of the embedded
// default when dir is "". Subdirectories and other files are ignored.
func readFiles(dir string) ([]file, error) {
	var (
		fsys   fs.FS = DefaultPolicy
		root         = "rego"
		prefix       = embeddedPrefix
	)
	if dir != "" {
		fsys, root, prefix = os.DirFS(dir), ".", ""
	}
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("policy: reading policy directory: %w", err)
	}
	var files []file
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".rego") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(root, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		p := prefix + e.Name()
		if dir != "" {
			p = filepath.Join(dir, e.Name())
		}
		files = append(files, file{name: e.Name(), path: p, data: data})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// hashFiles is the sha256 of the files' names and contents, in name order,
// each length-prefixed so no two file sets hash alike.
func hashFiles(files []file, include func(file) bool) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		if !include(f) {
			continue
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(f.name)))
		h.Write(n[:])
		h.Write([]byte(f.name))
		binary.BigEndian.PutUint64(n[:], uint64(len(f.data)))
		h.Write(n[:])
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// revisionLen is how many hex digits of the sha256 a Revision keeps.
const revisionLen = 12

// snapshot is one compiled policy: immutable, swapped as a whole.
type snapshot struct {
	revision string // short sha256 of the policy files (tests excluded)
	content  string // sha256 of every file, tests included
	source   string // the directory, or "" for the embedded default
	files    []file // every .rego file, tests included, by name
	decision rego.PreparedEvalQuery
	row      rego.PreparedPartialQuery
}

// capabilities are OPA's built-ins minus the nondeterministic ones
// (http.send, time.now_ns, rand.intn, net.lookup_ip_addr, ...): a decision is
// compiled once per policy revision and must follow from the input and the
// policy alone.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool { return b.Nondeterministic })
	return c
}()

func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities)
}

// parseModules parses the files that include selects, collecting every
// parse error.
func parseModules(files []file, include func(file) bool) (map[string]*ast.Module, error) {
	modules := make(map[string]*ast.Module, len(files))
	var errs ast.Errors
	for _, f := range files {
		if !include(f) {
			continue
		}
		m, err := ast.ParseModuleWithOpts(f.path, string(f.data), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			var astErrs ast.Errors
			if errors.As(err, &astErrs) {
				errs = append(errs, astErrs...)
				continue
			}
			return nil, fmt.Errorf("policy: %s: %w", f.path, err)
		}
		modules[f.path] = m
	}
	if len(errs) > 0 {
		return nil, &CompileError{Errs: errs}
	}
	return modules, nil
}

func policyFile(f file) bool { return !isTestFile(f.name) }
func anyFile(file) bool      { return true }

// compile parses and compiles the policy files (tests excluded) and
// prepares both queries.
func compile(ctx context.Context, source string, files []file) (*snapshot, error) {
	modules, err := parseModules(files, policyFile)
	if err != nil {
		return nil, err
	}
	where := source
	if where == "" {
		where = strings.TrimSuffix(embeddedPrefix, "/")
	}
	if len(modules) == 0 {
		return nil, fmt.Errorf("policy: no .rego files in %s: %w", where, ErrCompile)
	}
	c := newCompiler()
	if c.Compile(modules); c.Failed() {
		return nil, &CompileError{Errs: c.Errors}
	}
	for _, ref := range []ast.Ref{decisionRef, rowRef} {
		if len(c.GetRules(ref)) == 0 {
			return nil, fmt.Errorf("policy: %s defines no rule %s: %w", where, ref, ErrCompile)
		}
	}
	decision, err := rego.New(
		rego.Compiler(c),
		rego.Query(DecisionQuery),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: preparing %s: %w", DecisionQuery, err)
	}
	row, err := rego.New(
		rego.Compiler(c),
		rego.Query(RowQuery),
		rego.Unknowns([]string{"input.record"}),
		rego.StrictBuiltinErrors(true),
	).PrepareForPartial(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: preparing %s: %w", RowQuery, err)
	}
	return &snapshot{
		revision: hashFiles(files, policyFile)[:revisionLen],
		content:  hashFiles(files, anyFile),
		source:   source,
		files:    files,
		decision: decision,
		row:      row,
	}, nil
}
