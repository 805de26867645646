package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseForward(t *testing.T) {
	cases := []struct {
		in   string
		want Forward
		err  bool
	}{
		{in: "127.0.0.1:16443=10.88.255.1:443", want: Forward{"127.0.0.1:16443", "10.88.255.1:443"}},
		{in: "[::1]:5001=127.0.0.1:5001", want: Forward{"[::1]:5001", "127.0.0.1:5001"}},
		{in: "127.0.0.1:16443", err: true},
		{in: "127.0.0.1=10.0.0.1:1", err: true},
		{in: "0.0.0.0:5001=127.0.0.1:5001", err: true}, // never on every interface of the host
		{in: "192.0.2.2:5001=127.0.0.1:5001", err: true},
	}
	for _, tc := range cases {
		got, err := ParseForward(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestServeReachesInsideTheNamespace forwards a host loopback port to a
// server on the loopback of a namespace the test creates, which the host
// itself cannot reach.
func TestServeReachesInsideTheNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to create a network namespace (make test runs as root)")
	}
	name := fmt.Sprintf("kip-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	path := "/run/netns/" + name
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	inside := listenInside(t, path)
	go func() {
		for {
			c, err := inside.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "inside: %s", line)
			}()
		}
	}()
	target := inside.Addr().String()
	if c, err := net.DialTimeout("tcp", target, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s answers on the host too; the test needs a port only the namespace has", target)
	}

	d, err := NewDialer(path)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := probe.Addr().String()
	probe.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, d, []Forward{{Listen: listen, Target: target}}, t.Logf) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})

	var conn net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		if conn, err = net.Dial("tcp", listen); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintln(conn, "hello")
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || reply != "inside: hello\n" {
		t.Fatalf("reply %q, %v; want the namespace's server to answer", reply, err)
	}
}

// listenInside listens on 127.0.0.1 of the namespace at path.
func listenInside(t *testing.T, path string) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(path)
		if err == nil {
			defer f.Close()
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		}
		if err != nil {
			done <- result{nil, err}
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		done <- result{l, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}
