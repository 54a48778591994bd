// Package docker is the end-to-end suite of Bulwark on a real Docker
// engine: Debian's dockerd, started by up.sh with its own roots, socket
// and bridge, runs every container through `bulwark-runc` (its default
// runtime) and Bulwark's OCI hook, which has the agent arm the container
// before its entrypoint. Run it with `make docker-e2e` (run.sh).
package docker
