package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway/sseclient"
)

// TestREADMECommands checks the README leads with the two set-up commands
// and that CI runs the second one.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindSubmatch(readme)
	if blocks == nil {
		t.Fatal("README has no sh code block")
	}
	var cmds []string
	for _, l := range strings.Split(string(blocks[1]), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, strings.TrimSpace(strings.SplitN(l, "#", 2)[0]))
		}
	}
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/sluice serve" || cmds[1] != "make test" {
		t.Fatalf("README's first block = %q, want the run and test commands", cmds)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "make test") {
		t.Fatal(".ci/run does not call `make test`")
	}
}

// TestServeTour runs the real binary with the embedded default (on free
// ports: tests never assume 8080 or 9092 are free), follows the "try it"
// block it prints, and stops it with Ctrl-C.
func TestServeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	dataDir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--embedded-kafka-addr", "127.0.0.1:0", "--generate-rate", "200", "--debug-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	// Read the banner up to the end of the "Try it" block.
	var base, tokenCmd, profiles string
	var tour []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		l := sc.Text()
		if m := regexp.MustCompile(`HTTP API\s+(http://\S+)`).FindStringSubmatch(l); m != nil {
			base = m[1]
		}
		if m := regexp.MustCompile(`Profiles\s+(http://\S+)`).FindStringSubmatch(l); m != nil {
			profiles = m[1]
		}
		if m := regexp.MustCompile(`TOKEN=\$\((.*)\)`).FindStringSubmatch(l); m != nil {
			tokenCmd = m[1]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "curl ") {
			tour = append(tour, strings.TrimSpace(l))
		}
		if strings.HasPrefix(l, "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if base == "" || len(tour) < 4 {
		t.Fatalf("banner without address or tour (base %q, %d curl lines)", base, len(tour))
	}
	waitReady(t, base, 20*time.Second)
	t.Logf("ready in %s", time.Since(start))

	// --debug-listen: Go's profiles on their own listener, not the API's.
	if !strings.HasSuffix(profiles, "/debug/pprof/") || strings.HasPrefix(profiles, base) {
		t.Fatalf("banner profiles address %q (API %s): want /debug/pprof/ on another listener", profiles, base)
	}
	if resp, err := http.Get(profiles + "cmdline"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "serve") {
			t.Fatalf("GET %scmdline: %d %q, want the process's command line", profiles, resp.StatusCode, b)
		}
	}
	if resp, err := http.Get(base + "/debug/pprof/cmdline"); err != nil || resp.StatusCode == 200 {
		t.Fatalf("the API address serves profiles: %v %v", resp, err)
	}

	// The token line runs this binary: `<bin> token --data-dir D --partner P`.
	args := strings.Fields(tokenCmd)
	if len(args) < 4 || args[0] != bin || args[1] != "token" {
		t.Fatalf("banner token command %q does not run this binary's token command", tokenCmd)
	}
	out, err := exec.Command(bin, args[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", tokenCmd, err)
	}
	token := strings.TrimSpace(string(out))
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
		t.Fatalf("token command printed %q, want exactly one JWT", out)
	}
	get := func(u string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultClient.Do(req)
	}
	// Without the token: 401 problem.
	if resp, err := http.Get(base + "/v1/products"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v, want 401", resp, err)
	}

	url := regexp.MustCompile(`(http://[^\s']+)`)
	var streamURL string
	for _, c := range tour {
		if strings.Contains(c, "<") { // a placeholder the user fills in
			continue
		}
		u := url.FindString(c)
		if u == "" {
			t.Fatalf("tour line without URL: %s", c)
		}
		if strings.Contains(c, " -sN ") {
			streamURL = u
			readOneRecord(t, u, token)
			continue
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := get(u)
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", c, resp.StatusCode, body)
			}
			if !strings.Contains(u, "/records") {
				break
			}
			var page struct{ Records []json.RawMessage }
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if len(page.Records) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no records after 15s of generating", c)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if streamURL == "" {
		t.Fatal("the tour has no stream command")
	}

	// Ctrl-C with a stream open: the stream is told to reconnect, the
	// process exits 0.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sseclient.NewReader(resp.Body)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	gotShutdown := false
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if ev.Type == "shutdown" {
			gotShutdown = true
		}
	}
	if !gotShutdown {
		t.Error("stream ended without a shutdown event")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sluice exited with %v after Ctrl-C", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not exit within 20s of Ctrl-C")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "kafka")); err != nil {
		t.Fatalf("no broker data in the data dir: %v", err)
	}
}

func waitReady(t *testing.T, base string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readOneRecord(t *testing.T, u, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("%s: content type %q", u, ct)
	}
	r := sseclient.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if ev.Type == "record" {
			if ev.ID == "" || !json.Valid(ev.Data) {
				t.Fatalf("%s: bad record event %+v", u, ev)
			}
			return
		}
	}
}
