// Command client is the e2e test image's network client: it connects to
// ADDR (host:port) over TCP, or fetches http://ADDR/ with -http, and prints
// one line describing the outcome:
//
//	ok ADDR [first line of the HTTP body]
//	fail ADDR KIND: ERROR
//
// where KIND is eperm (the connect was denied locally, e.g. by a cgroup
// BPF program), refused, timeout or error. It exits 0 on ok and 1 on fail.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "connect (and request) timeout")
	useHTTP := flag.Bool("http", false, "send GET / and print the first line of the body")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: client [-timeout D] [-http] HOST:PORT")
		os.Exit(2)
	}
	addr := flag.Arg(0)
	var line string
	var err error
	if *useHTTP {
		line, err = get(addr, *timeout)
	} else {
		err = dial(addr, *timeout)
	}
	if err != nil {
		fmt.Printf("fail %s %s: %v\n", addr, kind(err), err)
		os.Exit(1)
	}
	fmt.Println(strings.TrimSpace("ok " + addr + " " + line))
}

func dial(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	return c.Close()
}

func get(addr string, timeout time.Duration) (string, error) {
	cl := &http.Client{Timeout: timeout}
	resp, err := cl.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil && first == "" {
		return "", fmt.Errorf("read body: %w", err)
	}
	return strings.TrimSpace(first), nil
}

func kind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "eperm"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error"
	}
}
