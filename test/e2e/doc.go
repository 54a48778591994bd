// Package e2e holds Bulwark's end-to-end tests: real pods and containers run
// by containerd (CRI + NRI) and runc, driven only through crictl, with the
// agent attached through NRI when it is available.
//
// The runtime is started by test/e2e/up.sh, which prints the environment the
// tests read; without it (or without root) every test skips with the reason:
//
//	test/e2e/install.sh                   # once: build containerd, crictl, CNI, images
//	eval "$(test/e2e/up.sh)"              # start the runtime (and the agent)
//	go test -count=1 ./test/e2e/
//	test/e2e/down.sh                      # remove everything up.sh created
//
// test/e2e/run.sh does all four, and always runs down.sh.
package e2e
