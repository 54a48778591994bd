#!/usr/bin/env bash
# make demo: Bulwark guarding a real container under containerd.
#
# Brings up the e2e runtime (containerd + NRI + runc + CNI, the agent and the
# collector), runs an "api" pod and a "web" pod (a spawner the demo asks over
# HTTP to run commands) from one image, lets the agent learn them, turns
# their fingerprints into one enforce-mode policy with `bulwark create
# policy --image`, applies it, then shows:
#   - learned behaviour still works,
#   - an exec never learned (from the app and via crictl exec) is killed
#     before it runs,
#   - a connection never learned is refused with EPERM,
# lists the deviations and flags in the collector, and merges the
# deviations back so the blocked connection is allowed. Tears everything
# down at the end unless the runtime was already up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

work="$(mktemp -d /tmp/bulwark-demo.XXXXXX)"
teardown() {
	local rc=$?
	rm -rf "$work"
	if [ -n "${runtime_started:-}" ]; then
		runtime_release || rc=1
	elif containerd_pid >/dev/null; then
		# The runtime was up before: it keeps running without the demo's
		# pods and policy.
		for p in demo-web demo-api; do
			id="$(crictl_cmd pods -q --name "$p" 2>/dev/null || true)"
			[ -z "$id" ] || { crictl_cmd stopp "$id" >/dev/null 2>&1 || true; crictl_cmd rmp "$id" >/dev/null 2>&1 || true; }
		done
		rm -f "$POLICY_DIR/demo.yaml"
	fi
	exit "$rc"
}
trap teardown EXIT

runtime_up
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

spawn() { wget -q -T 5 -t 1 -O - "http://$web_ip:8080/spawn?$1" 2>&1 || true; }

step "Starting pods: api (an HTTP server) and web (an app that spawns commands on request)"
api="$(run_pod demo-api api /bin/httpserver -listen :8080)"
api_ip="$(pod_ip "$api")"
wait_http "http://$api_ip:8080/"
web="$(run_pod demo-web web /bin/spawner -listen :8080)"
web_ip="$(pod_ip "$web")"
wait_http "http://$web_ip:8080/"
echo "    api pod $api_ip, web pod $web_ip; no policy selects them: the agent only observes"

step "Learning: web does its normal work (its spawner runs client, which calls api:8080)"
for _ in 1 2 3; do
	echo "    $(spawn "cmd=/bin/client&arg=-http&arg=$api_ip:8080")"
done
# learned NAME: the fingerprints in $fps show a process NAME.
learned() { grep -q "\"name\": *\"$1\"" <<<"$fps"; }
printf '    waiting for both fingerprints in the collector'
for _ in $(seq 100); do
	fps="$(bulwark get fingerprints --image "$BULWARK_TEST_IMAGE" -o json 2>/dev/null || true)"
	learned client && learned httpserver && break
	printf .
	sleep 0.2
done
echo
learned client || die "the fingerprints never showed web's client"
learned httpserver || die "the fingerprints never showed api's httpserver"
show bulwark get fingerprints --image "$BULWARK_TEST_IMAGE"

step "One command turns the fingerprints of every instance of the image into an enforce-mode policy"
printf '    $ bulwark create policy --image %s --name demo --mode enforce -o yaml\n' "$BULWARK_TEST_IMAGE"
bulwark create policy --image "$BULWARK_TEST_IMAGE" --name demo --mode enforce -o yaml >"$work/policy.yaml" 2>"$work/create.log"
sed 's/^/    /' "$work/create.log" "$work/policy.yaml"
show bulwark apply -f "$work/policy.yaml"
sleep 0.5
show bulwark status

step "Allowed (learned): web's spawner runs client, which connects to api:8080"
out="$(spawn "cmd=/bin/client&arg=-http&arg=$api_ip:8080")"
echo "    $out"
case "$out" in *": exit 0: ok $api_ip:8080"*) ;; *) die "what was learned fails under the policy" ;; esac

step "Blocked exec: web's spawner runs /bin/sh (never learned)"
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

step "Blocked connection: client connects to api:9090 (never learned)"
echo "    $(spawn "cmd=/bin/client&arg=$api_ip:9090")"

step "web keeps serving"
echo "    $(wget -q -T 5 -t 1 -O - "http://$web_ip:8080/")"

sleep 1
step "Deviations, as the agent streamed them to the collector"
show bulwark get deviations
step "One deviation as YAML: exactly what 'bulwark merge' needs to allow it"
bulwark get deviations -o yaml | awk '/^---/{n++} n<2' | sed 's/^/    /'
step "Flags raised by the policy's response"
show bulwark get flags

n="$(bulwark get deviations -o json | grep -o '"verdict": *"blocked"' | wc -l)"
[ "$n" -ge 3 ] || die "expected at least 3 blocked deviations, saw $n"

step "Accepting the deviations: merged back into the policy and applied"
bulwark merge -f "$work/policy.yaml" --with-deviations >"$work/merged.yaml"
show bulwark diff -f "$work/policy.yaml" --with-deviations
show bulwark apply -f "$work/merged.yaml"
sleep 0.5
step "client to api:9090 is allowed now (api does not listen there: refused by api, not by Bulwark)"
out="$(spawn "cmd=/bin/client&arg=$api_ip:9090")"
echo "    $out"
case "$out" in *"not permitted"*) die "the merged policy still blocks api:9090" ;; esac
step "Demo done: learned, enforced, $n blocked deviations, merged back"
