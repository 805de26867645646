// Command kip-sleep is the tiny static sleeper that keeps each cached image in
// use. It depends on the standard library only, so it runs in any image,
// including ones without a shell.
//
//	kip-sleep [DURATION]        sleep (default 720h), exit 0 on SIGTERM or SIGINT;
//	                            one line on stdout says it is ready for them
//	kip-sleep --install PATH    copy this executable to PATH (mode 0755) and exit
//
// DURATION is a Go duration (90s, 720h) or a number of seconds.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const defaultDuration = 720 * time.Hour

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kip-sleep:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) >= 1 && (args[0] == "--install" || args[0] == "-install") {
		if len(args) != 2 {
			return errors.New("usage: kip-sleep --install PATH")
		}
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		return install(self, args[1])
	}
	if len(args) > 1 {
		return errors.New("usage: kip-sleep [DURATION] | kip-sleep --install PATH")
	}
	d := defaultDuration
	if len(args) == 1 {
		var err error
		if d, err = parseDuration(args[0]); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// Said once the signals are caught: a supervisor (or a test) that waits
	// for this line knows SIGTERM ends the sleep with status 0.
	fmt.Printf("kip-sleep: sleeping %v; SIGTERM or SIGINT ends it\n", d)
	sleep(d, sig)
	return nil
}

// sleep returns after d, or as soon as a signal arrives.
func sleep(d time.Duration, sig <-chan os.Signal) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-sig:
	}
}

func parseDuration(s string) (time.Duration, error) {
	if secs, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: want a Go duration such as 720h or a number of seconds", s)
	}
	return d, nil
}

// install copies src to dst atomically: a temporary file beside dst, then a rename.
func install(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".kip-sleep-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst) //nolint:gosec // G703: dst is the copy destination the pod spec names, the whole point of this command
}
