package bpf

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// tracepointSpec is kernel BTF holding btf_trace_NAME typedefs with the
// given number of arguments (the data pointer not counted).
func tracepointSpec(t *testing.T, args map[string]int) *btf.Spec {
	t.Helper()
	var types []btf.Type
	for name, n := range args {
		params := []btf.FuncParam{{Type: &btf.Pointer{Target: &btf.Void{}}}}
		for range n {
			params = append(params, btf.FuncParam{Type: &btf.Int{Name: "u64", Size: 8}})
		}
		proto := &btf.FuncProto{Return: &btf.Void{}, Params: params}
		types = append(types, &btf.Typedef{Name: "btf_trace_" + name, Type: &btf.Pointer{Target: proto}})
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestPickURingHooks: the submit and complete programs follow the
// kernel's tracepoints (as on 6.1, 6.12 and 6.18); a kernel without
// io_uring is told apart from one whose tracepoints are unexpected.
func TestPickURingHooks(t *testing.T) {
	for _, tc := range []struct {
		name string
		tps  map[string]int
		want uringHooks
		err  error // errNoURing or nil
		bad  bool  // any other error
	}{
		{"6.1", map[string]int{"io_uring_submit_sqe": 2, "io_uring_complete": 7, "io_uring_cqe_overflow": 5},
			uringHooks{"on_uring_submit_sqe", "on_uring_complete_args"}, nil, false},
		{"6.12", map[string]int{"io_uring_submit_req": 1, "io_uring_complete": 7, "io_uring_cqe_overflow": 5},
			uringHooks{"on_uring_submit", "on_uring_complete_args"}, nil, false},
		{"6.18", map[string]int{"io_uring_submit_req": 1, "io_uring_complete": 3, "io_uring_cqe_overflow": 5},
			uringHooks{"on_uring_submit", "on_uring_complete"}, nil, false},
		{"no io_uring", map[string]int{"sys_exit": 2}, uringHooks{}, errNoURing, false},
		{"other complete", map[string]int{"io_uring_submit_req": 1, "io_uring_complete": 5, "io_uring_cqe_overflow": 5},
			uringHooks{}, nil, true},
		{"no overflow", map[string]int{"io_uring_submit_req": 1, "io_uring_complete": 3}, uringHooks{}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickURingHooks(tracepointSpec(t, tc.tps))
			switch {
			case tc.bad:
				if err == nil || errors.Is(err, errNoURing) {
					t.Fatalf("got %+v, %v; want an error other than errNoURing", got, err)
				}
			case !errors.Is(err, tc.err) || (tc.err == nil && got != tc.want):
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
