// Package netns forwards TCP connections from this host's loopback into a
// network namespace, so that the local test cluster, which lives in a
// namespace of its own, is reached from the host only through 127.0.0.1.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Forward is one listening address on the host and the address inside the
// namespace its connections go to.
type Forward struct {
	Listen, Target string
}

// ParseForward reads LISTEN=TARGET, both host:port.
func ParseForward(s string) (Forward, error) {
	l, t, ok := strings.Cut(s, "=")
	if !ok {
		return Forward{}, fmt.Errorf("forward %q: expected LISTEN=TARGET, both host:port", s)
	}
	for _, addr := range []string{l, t} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Forward{}, fmt.Errorf("forward %q: %w", s, err)
		}
	}
	host, _, _ := net.SplitHostPort(l)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return Forward{}, fmt.Errorf("forward %q: listen on a loopback address, not %q", s, host)
	}
	return Forward{Listen: l, Target: t}, nil
}

// Dialer opens connections from inside one network namespace.
type Dialer struct {
	path string // e.g. /run/netns/kip-cluster
}

// NewDialer checks that the namespace at path can be entered.
func NewDialer(path string) (*Dialer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	f.Close()
	return &Dialer{path: path}, nil
}

// DialContext connects to addr from inside the namespace. The socket is
// made on an OS thread that has entered the namespace and keeps it for its
// lifetime; the thread then returns to the host namespace.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err := d.dialInside(ctx, addr)
		// A thread that could not return to the host namespace is left
		// locked, so the runtime ends it with this goroutine.
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

func (d *Dialer) dialInside(ctx context.Context, addr string) (net.Conn, error) {
	host, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer host.Close()
	target, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", d.path, err)
	}
	var dialer net.Dialer
	// The socket is created before DialContext returns or blocks in the
	// poller, on this thread, hence in the namespace.
	conn, dialErr := dialer.DialContext(ctx, "tcp", addr)
	if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("return to the host namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

// Serve listens on every forward's address on the host and copies each
// connection to its target inside the namespace, until ctx ends.
func Serve(ctx context.Context, d *Dialer, forwards []Forward, logf func(string, ...any)) error {
	var lc net.ListenConfig
	var listeners []net.Listener
	for _, f := range forwards {
		l, err := lc.Listen(ctx, "tcp", f.Listen)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners = append(listeners, l)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(forwards))
	for i, f := range forwards {
		l := listeners[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- accept(ctx, l, d, f.Target, logf)
		}()
	}
	<-ctx.Done()
	for _, l := range listeners {
		l.Close()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func accept(ctx context.Context, l net.Listener, d *Dialer, target string, logf func(string, ...any)) error {
	for {
		in, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer in.Close()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			out, err := d.DialContext(dctx, target)
			cancel()
			if err != nil {
				logf("%s -> %s: %v", l.Addr(), target, err)
				return
			}
			defer out.Close()
			pipe(in, out)
		}()
	}
}

// pipe copies both ways until either side closes.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}
