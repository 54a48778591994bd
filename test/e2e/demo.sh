#!/usr/bin/env bash
# make demo: Bulwark guarding a real container under containerd.
#
# Brings up the e2e runtime (containerd + NRI + runc + CNI, and the agent),
# runs an "api" pod and a "web" pod (a spawner the demo asks over HTTP to run
# commands), applies an enforce-mode policy to web that allows its process
# tree (spawner -> client) and egress to api:8080 only, then shows:
#   - allowed behaviour still works,
#   - an exec outside the tree (from the app and via crictl exec) is killed
#     before it runs,
#   - a connection outside the network policy is refused with EPERM,
# and lists the deviations and flags the agent recorded. Tears everything
# down at the end unless the runtime was already up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

"$E2E_SRC/install.sh" >&2

was_up=
if [ -f "$E2E_DIR/run/containerd.pid" ] && [ -d "/proc/$(cat "$E2E_DIR/run/containerd.pid")" ]; then
	was_up=1
fi
work="$(mktemp -d /tmp/bulwark-demo.XXXXXX)"
teardown() {
	local rc=$?
	rm -rf "$work"
	if [ -z "$was_up" ]; then
		"$E2E_SRC/down.sh" >&2 || rc=1
	else
		for p in demo-web demo-api; do
			id="$(crictl_cmd pods -q --name "$p" 2>/dev/null || true)"
			[ -z "$id" ] || { crictl_cmd stopp "$id" >/dev/null 2>&1 || true; crictl_cmd rmp "$id" >/dev/null 2>&1 || true; }
		done
		rm -f "$POLICY_DIR/demo-web.yaml"
	fi
	exit "$rc"
}
trap teardown EXIT

eval "$("$E2E_SRC/up.sh")"
bulwark() { "$BULWARK_BIN" "$@"; }
step() { printf '\n==> %s\n' "$*"; }
show() { printf '    $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }

# run_pod NAME LABEL-APP CMD... starts a pod with one container running CMD
# from the test image and prints the pod id.
run_pod() {
	local name=$1 app=$2
	shift 2
	local args
	args="$(printf '"%s",' "$@")"
	cat >"$work/$name-pod.json" <<-JSON
		{"metadata": {"name": "$name", "namespace": "demo", "uid": "$name-uid", "attempt": 0},
		 "labels": {"app": "$app"}, "log_directory": "$work/logs/$name",
		 "linux": {"cgroup_parent": "$CGROUP_PARENT"}}
	JSON
	cat >"$work/$name-ctr.json" <<-JSON
		{"metadata": {"name": "main"}, "image": {"image": "$BULWARK_TEST_IMAGE"},
		 "command": [${args%,}], "log_path": "$name.log", "linux": {}}
	JSON
	local pod ctr
	pod="$(crictl_cmd runp "$work/$name-pod.json")"
	ctr="$(crictl_cmd create "$pod" "$work/$name-ctr.json" "$work/$name-pod.json")"
	crictl_cmd start "$ctr" >/dev/null
	echo "$pod"
}
pod_ip() { crictl_cmd inspectp -o go-template --template '{{.status.network.ip}}' "$1"; }
ctr_of() { crictl_cmd ps -q --pod "$1"; }

# wait_http URL waits until URL answers.
wait_http() {
	for _ in $(seq 50); do
		wget -q -T 1 -t 1 -O /dev/null "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	die "$1 does not answer"
}

step "Starting pods: api (an HTTP server) and web (an app that spawns commands on request)"
api="$(run_pod demo-api api /bin/httpserver -listen :8080)"
api_ip="$(pod_ip "$api")"
wait_http "http://$api_ip:8080/"
web="$(run_pod demo-web web /bin/spawner -listen :8080)"
web_ip="$(pod_ip "$web")"
wait_http "http://$web_ip:8080/"
echo "    api pod $api_ip, web pod $web_ip"

step "Applying an enforce-mode policy to web: spawner -> client only; egress to api:8080 only"
cat >"$work/policy.yaml" <<-YAML
	apiVersion: bulwark/v1
	kind: WorkloadPolicy
	metadata:
	  name: demo-web
	  type: container
	spec:
	  containerSelector:
	    image: $BULWARK_TEST_IMAGE
	  podSelector:
	    matchLabels:
	      app: web
	  mode: enforce
	  processPolicy:
	  - name: spawner
	    exe: [/bin/spawner]
	    euser: [root]
	    id: spawner_0
	    children:
	    - name: client
	      exe: [/bin/client]
	      id: client_0
	  networkPolicy:
	    ingress:
	    - from:
	      - ipBlock:
	          cidr: $BULWARK_E2E_SUBNET
	      ports:
	      - port: 8080
	        protocol: TCP
	      processes: [spawner_0]
	    egress:
	    - to:
	      - ipBlock:
	          cidr: $api_ip/32
	      ports:
	      - port: 8080
	        protocol: TCP
	      processes: [client_0]
	  response:
	    default:
	    - makeRedFlag:
	        severity: high
	    actions: []
YAML
show bulwark validate -f "$work/policy.yaml"
show bulwark apply -f "$work/policy.yaml"
sleep 0.5
show bulwark status

spawn() { wget -q -T 5 -t 1 -O - "http://$web_ip:8080/spawn?$1" 2>&1 || true; }

step "Allowed: web's spawner runs client, which connects to api:8080"
echo "    $(spawn "cmd=/bin/client&arg=-http&arg=$api_ip:8080")"

step "Blocked exec: web's spawner runs /bin/sh (not in the process tree)"
echo "    $(spawn "cmd=/bin/sh&arg=-c&arg=echo+this+never+prints")"

step "Blocked exec: crictl exec into web"
web_ctr="$(ctr_of "$web")"
printf '    $ crictl exec %s /bin/id\n' "${web_ctr:0:12}"
if out="$(crictl_cmd exec "$web_ctr" /bin/id 2>&1)"; then
	echo "    unexpected success: $out"
	exit 1
else
	echo "    refused: ${out:-killed}"
fi

step "Blocked connection: client connects to api:9090 (port not allowed)"
echo "    $(spawn "cmd=/bin/client&arg=$api_ip:9090")"

step "web keeps serving"
echo "    $(wget -q -T 5 -t 1 -O - "http://$web_ip:8080/")"

sleep 1
step "Deviations recorded by the agent"
show bulwark get deviations
step "One deviation as YAML: exactly what 'bulwark merge' needs to allow it"
bulwark get deviations -o yaml | awk '/^---/{n++} n<2' | sed 's/^/    /'
step "Flags raised by the policy's response"
show bulwark get flags

n="$(bulwark get deviations -o json | grep -o '"verdict": *"blocked"' | wc -l)"
[ "$n" -ge 3 ] || die "expected at least 3 blocked deviations, saw $n"
step "Demo done: $n blocked deviations"
