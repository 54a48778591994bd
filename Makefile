# Bulwark build, test and demo targets.
#   make demo   the main job: a real container learned, enforced, a deviation blocked
#   make test   every test (CI calls it through .ci/run); installs what it needs
GO      ?= go
CLANG   ?= clang
BIN     := bin/bulwark
# Packages whose tests run on the host (as root: BPF, cgroups): every package
# but those under test/ (the e2e suite and the VM harness run in their own
# targets). Listed when the unit target runs.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test/')

.PHONY: build deps test unit lint generate generate-check fuzz vmtest install-e2e e2e e2e-up e2e-down docker-e2e docker-up docker-down bench demo image k8s-up k8s-down k8s-e2e

# bulwark and, beside it, the small executables runc starts for every
# container: the Docker runtime's runc wrapper and the OCI hook, static
# (no dynamic loader: the hook starts in 1.5 ms instead of 2.5 ms), and the
# wrapper's C front (clang: the build group of test/deps.sh).
build:
	@bash test/deps.sh build >&2
	$(GO) build -o $(BIN) ./cmd/bulwark
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/bulwark-runc ./cmd/bulwark-oci-hook
	$(CLANG) -O2 -static -Wall -Werror -o bin/bulwark-runc-front hook/front/bulwark-runc-front.c

# Every apt group of test/deps.sh. The targets below install only the groups
# they use: generate the build group, unit the unit and servers groups,
# install.sh (e2e, demo, bench) the e2e and servers groups, the VM harness
# (vmtest, vmbench) the vm group, and vmtest the servers group too.
deps:
	bash test/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerates the bpf2go objects (clang, llvm-strip, libbpf-dev).
generate:
	bash test/deps.sh build
	$(GO) generate ./bpf/...

# Fails when the committed BPF objects differ from freshly generated ones.
generate-check: generate
	@git diff --exit-code --stat -- 'bpf/*_bpfel.go' 'bpf/*_bpfel.o' || { echo "generated BPF objects are stale: run make generate and commit"; exit 1; }

# The service tests in cmd/bulwark run Debian's nginx and Apache (the
# servers group).
unit:
	bash test/deps.sh unit servers
	$(GO) test -count=1 $(UNIT_PKGS)

# Short fuzz runs of the loader and the merges (the seed corpora also run in
# every `make unit`). Each target runs a fixed number of inputs, sized to about
# 10 s here, rather than for a fixed time: a time-bound run can fail with
# "context deadline exceeded" and no crasher when a worker is busy at the
# deadline (a race in Go's fuzz coordinator, seen in CI); a count-bound run has
# no deadline. Minimizing each new interesting input is capped by count too, so
# the workers keep fuzzing instead of minimizing for seconds at a time.
FUZZ_TARGETS := FuzzLoad:100000 FuzzMerge:30000 FuzzPolicyFromFingerprints:30000 FuzzMergeGenerated:1500
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		f=$${t%%:*}; n=$${t##*:}; \
		echo "fuzz $$f ($$n inputs)"; \
		$(GO) test ./policy -run '^$$' -fuzz "^$$f$$" -fuzztime "$${n}x" -fuzzminimizetime 100x || exit 1; \
	done

# The bpf and cgroup suites inside qemu VMs on both kernels, the bpf suite
# against the lsm backend; the servers suite (the seed's example on Debian's
# nginx and Apache, lsm) on 6.12 only, the newest kernel given: on both it
# would take CI past 45 minutes (see test/vm/vmtest.sh).
vmtest:
	bash test/vm/vmtest.sh --kernel 6.1 --kernel 6.12

# bulwark install containerd against the real containerd the e2e harness
# builds (install.sh; cached): config dump before and after, Bulwark's NRI
# plugin registering. The tests use their own directories and sockets, so
# they need no e2e lock.
install-e2e:
	@bash test/e2e/install.sh >&2
	BULWARK_CONTAINERD="$${BULWARK_E2E_CACHE:-$(CURDIR)/.cache/e2e}/bin/containerd" \
		$(GO) test -count=1 -run '^TestRealContainerd' ./install/containerd

# The e2e suite against a real containerd + runc + CNI + crictl (brought up and torn down).
e2e: build
	bash test/e2e/run.sh

e2e-up: build
	@bash test/e2e/install.sh >&2
	@bash test/e2e/up.sh

e2e-down:
	bash test/e2e/down.sh

# The Docker suite against Debian's dockerd with Bulwark's runtime as its
# default (brought up and torn down; its own roots, socket and bridge).
docker-e2e: build
	bash test/docker/run.sh

docker-up: build
	@bash test/deps.sh docker >&2
	@bash test/e2e/images.sh >&2
	@bash test/docker/up.sh

docker-down:
	bash test/docker/down.sh

# Bulwark's image as an OCI archive (bin/bulwark-image.tar, built offline
# from the static binary): ctr -n k8s.io images import bin/bulwark-image.tar
image:
	bash install/image.sh

# A real single-node Kubernetes on the e2e containerd (test/k8s): k8s-up
# prints export lines (KUBECONFIG, PATH with the built kubectl) for
#   eval "$$(make -s k8s-up)"
# k8s-down removes it and restores what the kubelet changed. k8s-e2e brings
# it up, runs the suite with Bulwark's DaemonSet, and tears it down.
k8s-up: build
	@bash test/e2e/install.sh >&2
	@bash test/k8s/install.sh >&2
	@flock /tmp/bulwark-e2e.lock bash test/k8s/up.sh

k8s-down:
	flock /tmp/bulwark-e2e.lock bash test/k8s/down.sh

k8s-e2e: build image
	bash test/k8s/run.sh

# Benchmarks (not tests): overhead ratios measured side by side, with vs
# without Bulwark, in one run each; then the collector's and the whole
# observation pipeline's throughput and memory.
# The bpf benchmark runs busybox (the e2e and vm groups), before the harnesses
# below install their groups.
bench: build
	bash test/deps.sh e2e vm
	$(GO) run ./bpf/internal/bench
	bash test/vm/vmbench.sh
	bash test/e2e/bench.sh --compare
	bash test/e2e/bench.sh --hook
	bash test/docker/bench.sh
	$(GO) test ./collector -run '^$$' -bench .
	$(GO) run ./agent/internal/pipelinebench -bulwark $(BIN)

# deps: the unit tests run /bin/busybox (busybox-static), which no earlier
# step installs; the later steps need the other groups anyway.
test: deps lint generate-check unit fuzz vmtest install-e2e e2e docker-e2e k8s-e2e

demo: build
	bash test/e2e/demo.sh
