package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"720h", 720 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{"-1s", 0, true},
		{"forever", 0, true},
		{"", 0, true},
	}
	for _, tc := range cases {
		got, err := parseDuration(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSleepEndsOnSignal(t *testing.T) {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { sleep(time.Hour, sig); close(done) }()
	sig <- syscall.SIGTERM
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sleep did not end on a signal")
	}
}

func TestInstallCopiesExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("#!binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "sub", "sleep")
	if err := install(src, dst); err == nil {
		t.Fatal("install into a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := install(src, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, []byte("#!binary")) {
		t.Fatalf("installed content %q, %v", got, err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".kip-sleep-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestBinary builds the real static binary, installs it with itself, runs
// the copy and stops it with SIGTERM, as the kubelet does.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kip-sleep")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	const maxSize = 4 << 20
	if fi.Size() > maxSize {
		t.Errorf("kip-sleep is %d bytes, want at most %d", fi.Size(), maxSize)
	}
	t.Logf("kip-sleep size: %d bytes", fi.Size())

	copyPath := filepath.Join(dir, "copy")
	if out, err := exec.Command(bin, "--install", copyPath).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if out, err := exec.Command(copyPath, "0").CombinedOutput(); err != nil {
		t.Fatalf("sleep 0: %v\n%s", err, out)
	}
	if err := exec.Command(copyPath, "nonsense").Run(); err == nil {
		t.Error("an invalid duration exited 0")
	}

	cmd := exec.Command(copyPath, "720h")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The readiness handshake: its line comes once SIGTERM is caught, however
	// slow the machine.
	ready, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || ready != "kip-sleep: sleeping 720h0m0s; SIGTERM or SIGINT ends it\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("ready line %q, %v", ready, err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
		t.Logf("exited %v after SIGTERM", time.Since(start))
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("kip-sleep ignored SIGTERM")
	}
}
