package policy

import (
	"context"
	"fmt"
	"io"

	"github.com/open-policy-agent/opa/v1/tester"
)

// Test runs the policy's Rego unit tests (test_* rules, usually in
// *_test.rego files) over the files of the policy in force, with the same
// compiler settings Decide uses, as `opa test` would. It writes OPA's
// report to w (every test with verbose, else failures and a summary) and
// returns how many tests passed and how many failed or raised an error. A
// policy without tests returns 0, 0, nil: callers that require tests check
// for it.
func (e *Engine) Test(ctx context.Context, w io.Writer, verbose bool) (passed, failed int, err error) {
	s := e.cur.Load()
	modules, err := parseModules(s.files, anyFile)
	if err != nil {
		return 0, 0, err
	}
	runner := tester.NewRunner().
		SetCompiler(newCompiler()).
		SetModules(modules).
		EnableTracing(verbose).
		CapturePrintOutput(true)
	results, err := runner.RunTests(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("policy: running tests: %w", err)
	}
	counted := make(chan *tester.Result)
	go func() { // ends when RunTests closes results
		defer close(counted)
		for r := range results {
			switch {
			case r.Skip:
			case r.Pass():
				passed++
			default:
				failed++
			}
			counted <- r
		}
	}()
	rep := tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}
	if err := rep.Report(counted); err != nil {
		for range counted { // let the counting goroutine finish
		}
		return passed, failed, fmt.Errorf("policy: reporting tests: %w", err)
	}
	return passed, failed, nil
}
