# Bulwark build, test and demo targets. `make test` is the one command that
# runs every test (CI calls it through .ci/run); `make demo` runs the demo.
GO      ?= go
BIN     := bin/bulwark

.PHONY: build test unit lint generate demo

build:
	$(GO) build -o $(BIN) ./cmd/bulwark

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

test: lint unit

generate:
	$(GO) generate ./...

demo: build
	@echo "demo: not yet wired"
