package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxPeers bounds -peers: peer i is 127.1.0.0 + i, which stays inside
// 127.0.0.0/8 (loopback).
const maxPeers = 1 << 22

// peerPort is where every datagram goes: the discard port; nothing needs to
// listen, the kernel reports the send before the packet is routed.
const peerPort = 9

// peerAddr is the i-th distinct peer of a workload: 127.1.0.0 + i.
func peerAddr(i int) [4]byte {
	v := uint32(127)<<24 + uint32(1)<<16 + uint32(i)
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// execName is the name of a workload's i-th distinct exec (a link to this
// binary, so the kernel sees a different name each time).
func execName(i int) string { return "bench-exec-" + strconv.Itoa(i) }

// worker is one service's workload, started inside the service's cgroup
// with args "PEERS RATE EXECS LINKDIR". It waits until its stdin closes
// (the benchmark starts every worker at once that way), then sends one UDP
// datagram to each of PEERS distinct loopback peers from an unbound socket
// (one sendmsg observation each, and no bind), RATE a second (0: as fast
// as it can), and runs EXECS distinct execs from LINKDIR. It returns the
// process exit status.
func worker(args string) int {
	f := strings.Fields(args)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "worker: want PEERS RATE EXECS LINKDIR, got %q\n", args)
		return 2
	}
	peers, err1 := strconv.Atoi(f[0])
	rate, err2 := strconv.ParseFloat(f[1], 64)
	execs, err3 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintf(os.Stderr, "worker: bad arguments %q: %v\n", args, err)
		return 2
	}
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "worker: wait for start:", err)
		return 1
	}
	if err := sendDatagrams(peers, rate); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	for i := 1; i <= execs; i++ {
		cmd := exec.Command(filepath.Join(f[3], execName(i)))
		cmd.Env = []string{execEnv + "=1"}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "worker: exec %s: %v %s\n", cmd.Path, err, out)
			return 1
		}
	}
	return 0
}

// sendDatagrams sends a one-byte datagram to each of n distinct peers,
// rate a second when rate > 0: datagram i goes no earlier than i/rate
// seconds after the first.
func sendDatagrams(n int, rate float64) error {
	if n == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("udp socket: %w", err)
	}
	defer unix.Close(fd)
	payload := []byte{0}
	start := time.Now()
	for i := range n {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > time.Millisecond {
				time.Sleep(wait)
			}
		}
		to := &unix.SockaddrInet4{Port: peerPort, Addr: peerAddr(i)}
		for {
			err = unix.Sendto(fd, payload, 0, to)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("send to %v:%d: %w", to.Addr, peerPort, err)
		}
	}
	return nil
}
