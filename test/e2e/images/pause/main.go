// Command pause is the entrypoint of the e2e sandbox image
// (localhost/bulwark-pause:1): it holds the pod's namespaces open and exits
// as soon as it receives SIGTERM or SIGINT. As PID 1 of its namespace it
// must handle the signal itself, or the runtime would wait for a SIGKILL.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
