package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/internal/unixapi"
)

// Defaults of Options.
const (
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultPruneInterval = 10 * time.Minute
	// maxBatchBytes bounds the body of one POST /v1/records.
	maxBatchBytes = 64 << 20
	// shutdownGrace is how long requests in flight may take to finish
	// once Serve stops.
	shutdownGrace = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// Socket is the unix socket to listen on (DefaultSocket when empty).
	Socket string
	// DB is the bbolt database file (DefaultDB when empty).
	DB string
	// Retention removes entries last seen longer ago than this (running
	// workloads excepted); zero keeps them however old.
	Retention time.Duration
	// MaxSize bounds the total size of the stored entries (keys plus
	// values); the oldest go first. Zero means no bound.
	MaxSize int64
	// PruneInterval is how often retention runs (DefaultPruneInterval
	// when zero); it also runs when the server starts.
	PruneInterval time.Duration
	// MetricsAddr, when set, is a TCP address to serve Prometheus metrics
	// on at /metrics.
	MetricsAddr string
	// Logger receives the server's log (discarded when nil).
	Logger *slog.Logger
}

// Server is the collector: it stores what agents stream to its socket and
// answers queries about it.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   *store
	ln      net.Listener
	metrics *metrics
	mln     net.Listener
}

// NewServer opens the database, runs retention once and starts listening
// on the socket (mode 0600; its directory is created 0700 when missing; a
// stale socket left by a dead collector is replaced) and, when asked, on
// the metrics address. Serve must be called to serve and to release them.
func NewServer(opts Options) (*Server, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.DB == "" {
		opts.DB = DefaultDB
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: newMetrics()}
	st, err := openStore(opts.DB, opts.Logger)
	if err != nil {
		return nil, err
	}
	s.store = st
	s.prune()
	if s.ln, err = unixapi.Listen(opts.Socket); err != nil {
		st.close()
		return nil, err
	}
	if opts.MetricsAddr != "" {
		if s.mln, err = net.Listen("tcp", opts.MetricsAddr); err != nil {
			s.ln.Close()
			st.close()
			return nil, fmt.Errorf("listen for metrics on %s: %w", opts.MetricsAddr, err)
		}
	}
	return s, nil
}

// MetricsAddr returns the address metrics are served on, or "".
func (s *Server) MetricsAddr() string {
	if s.mln == nil {
		return ""
	}
	return s.mln.Addr().String()
}

// Serve serves until ctx is done, then stops the listeners, removes the
// socket and closes the database.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := []func() error{
		func() error { return unixapi.Serve(ctx, s.ln, s.handler(), shutdownGrace) },
		func() error { s.pruneEvery(ctx); return nil },
	}
	if s.mln != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", s.serveMetrics)
		run = append(run, func() error { return unixapi.Serve(ctx, s.mln, mux, shutdownGrace) })
	}
	// The first to return, whether the context ended or a listener
	// failed, stops the others.
	errs := make([]error, len(run)+1)
	var wg sync.WaitGroup
	for i, f := range run {
		wg.Go(func() {
			defer cancel()
			errs[i] = f()
		})
	}
	wg.Wait()
	errs[len(run)] = s.store.close()
	return errors.Join(errs...)
}

// pruneEvery runs retention every PruneInterval until ctx is done.
func (s *Server) pruneEvery(ctx context.Context) {
	t := time.NewTicker(s.opts.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.prune()
		}
	}
}

// prune runs retention and logs what it removed.
func (s *Server) prune() {
	n, err := s.store.prune(time.Now(), s.opts.Retention, s.opts.MaxSize)
	if err != nil {
		s.log.Error("collector: retention", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("collector: retention removed entries", "removed", n, "bytes", s.store.size())
	}
}

// handler routes the collector's API:
//
//	POST /v1/records        a Batch; replies with an Ack
//	GET  /v1/workloads      []Workload
//	GET  /v1/fingerprints   []FingerprintGroup
//	GET  /v1/policies       []StoredPolicy
//	GET  /v1/deviations     []StoredDeviation
//	GET  /v1/flags          []StoredFlag
//	GET  /v1/agents         []AgentState
//
// The GET endpoints take the Filter as query parameters image, service,
// namespace, policy and since (a duration such as "24h").
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/records", s.postRecords)
	query := func(list func(Filter, time.Time) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f, err := parseFilter(r.URL.Query())
			if err != nil {
				unixapi.WriteError(w, http.StatusBadRequest, err)
				return
			}
			out, err := list(f, time.Now())
			if errors.Is(err, errFlagsFilter) {
				unixapi.WriteError(w, http.StatusBadRequest, err)
				return
			}
			if err != nil {
				unixapi.WriteError(w, http.StatusInternalServerError, err)
				return
			}
			unixapi.WriteJSON(w, http.StatusOK, out)
		}
	}
	mux.Handle("GET /v1/workloads", query(func(f Filter, now time.Time) (any, error) { return s.store.workloads(f, now) }))
	mux.Handle("GET /v1/fingerprints", query(func(f Filter, now time.Time) (any, error) { return s.store.fingerprintGroups(f, now) }))
	mux.Handle("GET /v1/policies", query(func(f Filter, now time.Time) (any, error) { return s.store.policies(f, now) }))
	mux.Handle("GET /v1/deviations", query(func(f Filter, now time.Time) (any, error) { return s.store.deviations(f, now) }))
	mux.Handle("GET /v1/flags", query(func(f Filter, now time.Time) (any, error) { return s.store.flags(f, now) }))
	mux.HandleFunc("GET /v1/agents", func(w http.ResponseWriter, _ *http.Request) {
		out, err := s.store.agents()
		if err != nil {
			unixapi.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		unixapi.WriteJSON(w, http.StatusOK, out)
	})
	return mux
}

func (s *Server) postRecords(w http.ResponseWriter, r *http.Request) {
	var b Batch
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBatchBytes))
	if err := dec.Decode(&b); err != nil {
		unixapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("decode batch: %w", err))
		return
	}
	if b.Agent == "" {
		unixapi.WriteError(w, http.StatusBadRequest, errors.New("batch without agent name"))
		return
	}
	res, err := s.store.ingest(&b)
	if err != nil {
		s.log.Error("collector: ingest", "agent", b.Agent, "err", err)
		unixapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	s.metrics.ingested(time.Now(), res)
	if res.skipped > 0 {
		s.log.Warn("collector: agent spool dropped records before delivery", "agent", b.Agent, "records", res.skipped)
	}
	unixapi.WriteJSON(w, http.StatusOK, Ack{Seq: res.ack})
}

// parseFilter reads a Filter from query parameters.
func parseFilter(q url.Values) (Filter, error) {
	f := Filter{Image: q.Get("image"), Service: q.Get("service"), Namespace: q.Get("namespace"), Policy: q.Get("policy")}
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return f, fmt.Errorf("since %q: want a duration such as 24h", s)
		}
		f.Since = d
	}
	return f, nil
}

// values encodes a Filter as query parameters.
func (f Filter) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"image": f.Image, "service": f.Service, "namespace": f.Namespace, "policy": f.Policy} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Since > 0 {
		q.Set("since", f.Since.String())
	}
	return q
}
