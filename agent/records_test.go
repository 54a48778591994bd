package agent

import (
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

func deviation(pol, sum string) policy.Deviation {
	return policy.Deviation{Metadata: policy.Metadata{PolicyName: pol, Checksum: sum}}
}

func TestRecordsDeduplicateDeviationsByPolicyAndChecksum(t *testing.T) {
	r := newRecords(3)
	if !r.addDeviation(deviation("a", "1")) {
		t.Fatal("first deviation not new")
	}
	if r.addDeviation(deviation("a", "1")) {
		t.Error("repeat of the same deviation counted as new")
	}
	if !r.addDeviation(deviation("b", "1")) {
		t.Error("same checksum under another policy not new")
	}
	if n, _ := r.counts(); n != 2 {
		t.Errorf("stored %d deviations, want 2", n)
	}
	r.addDeviation(deviation("a", "2"))
	r.addDeviation(deviation("a", "3"))
	list := r.deviationList()
	if len(list) != 3 || list[0].Metadata.PolicyName != "b" {
		t.Errorf("bound not applied oldest-first: %+v", list)
	}
	// The evicted deviation is new again.
	if !r.addDeviation(deviation("a", "1")) {
		t.Error("evicted deviation not counted as new")
	}
}
