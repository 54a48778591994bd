package agent

import (
	"testing"

	"github.com/bulwarkhq/bulwark/policy"
)

func TestActionsFor(t *testing.T) {
	id := policy.Identity{Type: policy.TypeContainer, Image: "docker.io/library/nginx:latest",
		PodLabels: map[string]string{"app": "web"}, Namespace: "default",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "default"}}
	p := deviant{PID: 1, Comm: "sh", Exe: "/bin/sh", Euser: "root"}
	kill := func(sel policy.ActionSelectors) policy.Action {
		return policy.Action{AgentKillPod: &policy.KillAction{ActionSelectors: sel}}
	}
	tests := []struct {
		name string
		resp *policy.Response
		want []string
	}{
		{"no response block means a high red flag", nil, []string{"makeRedFlag:high"}},
		{"defaults always apply", &policy.Response{Default: []policy.Action{{MakeOpsFlag: &policy.FlagAction{Severity: "low"}}}},
			[]string{"makeOpsFlag:low"}},
		{"matching pod selector", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{
			PodSelector: &policy.LabelSelector{MatchLabels: map[string]string{"app": "web"}}})}}, []string{"agentKillPod"}},
		{"non-matching pod selector", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{
			PodSelector: &policy.LabelSelector{MatchLabels: map[string]string{"app": "db"}}})}}, nil},
		{"matching process selector", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{
			ProcessSelector: &policy.ProcessSelector{Exe: policy.StringList{"/bin/*"}}})}}, []string{"agentKillPod"}},
		{"process selector globs as every selector's ('*' crosses '/')", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{
			ProcessSelector: &policy.ProcessSelector{Exe: policy.StringList{"/*"}}})}}, []string{"agentKillPod"}},
		{"non-matching process selector", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{
			ProcessSelector: &policy.ProcessSelector{Euser: policy.StringList{"www-data"}}})}}, nil},
		{"action without selector never applies", &policy.Response{Actions: []policy.Action{kill(policy.ActionSelectors{})}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range actionsFor(tt.resp, id, p) {
				switch {
				case a.MakeRedFlag != nil:
					got = append(got, "makeRedFlag:"+a.MakeRedFlag.Severity)
				case a.MakeOpsFlag != nil:
					got = append(got, "makeOpsFlag:"+a.MakeOpsFlag.Severity)
				case a.AgentKillPod != nil:
					got = append(got, "agentKillPod")
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
