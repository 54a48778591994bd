# Bulwark build, test and demo targets.
#   make demo   the main job: a real container learned, enforced, a deviation blocked
#   make test   every test (CI calls it through .ci/run); installs what it needs
GO      ?= go
BIN     := bin/bulwark
# Packages whose tests run on the host (as root: BPF, cgroups).
UNIT_PKGS := ./policy/... ./cgroup/... ./bpf/... ./collector/... ./agent/... ./plugin/... ./cmd/...
FUZZTIME ?= 15s

.PHONY: build deps test unit lint generate generate-check fuzz vmtest e2e e2e-up e2e-down bench demo

build:
	$(GO) build -o $(BIN) ./cmd/bulwark

deps:
	bash test/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerates the bpf2go objects (clang, llvm-strip, libbpf-dev).
generate:
	$(GO) generate ./bpf/...

# Fails when the committed BPF objects differ from freshly generated ones.
generate-check: generate
	@git diff --exit-code --stat -- bpf/ || { echo "generated BPF objects are stale: run make generate and commit"; exit 1; }

unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# Short fixed-time fuzz runs of the loader and the merge.
fuzz:
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME)
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzMerge$$' -fuzztime $(FUZZTIME)

# The bpf suite against the lsm backend inside a qemu VM.
vmtest:
	bash test/vm/vmtest.sh --kernel 6.1 --kernel 6.12

# The e2e suite against a real containerd + runc + CNI + crictl (brought up and torn down).
e2e: build
	bash test/e2e/run.sh

e2e-up: build
	bash test/e2e/install.sh >&2
	@bash test/e2e/up.sh

e2e-down:
	bash test/e2e/down.sh

bench: build
	bash test/bench.sh

test: deps lint generate-check unit fuzz vmtest e2e

demo: deps build
	bash test/e2e/demo.sh
