package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/internal/unixapi"
)

// Defaults of ClientOptions.
const (
	DefaultMaxSpoolBytes = 64 << 20
	DefaultFlushTimeout  = 2 * time.Second
	// batchRecords and batchBytes bound one delivery.
	batchRecords = 1000
	batchBytes   = 4 << 20
	// maxRecordBytes bounds one spooled record (so does an eighth of the
	// spool). A batch holds less than batchBytes before its last record,
	// so one that ends with the largest record still fits the collector's
	// maxBatchBytes, with 1 MiB to spare for the batch's own fields.
	maxRecordBytes = maxBatchBytes - batchBytes - 1<<20
	// Delivery retries back off from minBackoff to maxBackoff while the
	// collector is unreachable.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Socket is the collector's socket (DefaultSocket when empty).
	Socket string
	// SpoolDir holds the on-disk queue; it survives restarts (required).
	SpoolDir string
	// MaxSpoolBytes bounds the spool (DefaultMaxSpoolBytes when zero).
	// When full, the oldest records are dropped and counted. A record
	// larger than an eighth of it, or than a batch to the collector
	// allows (about 59 MiB), is refused and counted as dropped.
	MaxSpoolBytes int64
	// Agent names this agent (required, for example the node name). One
	// client per agent name.
	Agent string
	// FlushTimeout is how long Close tries to deliver what is spooled
	// (DefaultFlushTimeout when zero).
	FlushTimeout time.Duration
	// Logger receives delivery problems (discarded when nil).
	Logger *slog.Logger
}

// Client is an agent's connection to the collector: Send spools a record
// on disk and returns; a background loop delivers spooled records in
// batches, resends what was not acknowledged and catches up when the
// collector comes back.
type Client struct {
	opts ClientOptions
	log  *slog.Logger
	api  *unixapi.Client

	mu     sync.Mutex
	sp     *spool
	closed bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// NewClient opens the spool and starts delivering.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Agent == "" {
		return nil, errors.New("collector client: no agent name")
	}
	if opts.SpoolDir == "" {
		return nil, errors.New("collector client: no spool directory")
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.MaxSpoolBytes <= 0 {
		opts.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = DefaultFlushTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sp, err := openSpool(opts.SpoolDir, opts.MaxSpoolBytes)
	if err != nil {
		return nil, fmt.Errorf("collector client: %w", err)
	}
	c := &Client{
		opts: opts,
		log:  opts.Logger,
		api:  unixapi.NewClient("collector", opts.Socket, 10*time.Second),
		sp:   sp,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.deliverLoop()
	return c, nil
}

// Send spools a record of the given kind: doc is a policy.Fingerprint,
// policy.Deviation, policy.Flag, WorkloadEvent, policy.WorkloadPolicy or
// Stats (or a pointer to one), matching kind. For Stats, Send fills in
// SpoolDepth and SpoolDropped. Send returns once the record is on disk; it
// fails only when the record cannot be spooled.
func (c *Client) Send(kind Kind, doc any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("collector client: closed")
	}
	if kind == KindStats {
		// Fill in the spool's figures; anything but Stats is left for
		// encodeDoc to refuse, as for every other kind.
		if d, ok := doc.(*Stats); ok && d != nil {
			doc = *d
		}
		if d, ok := doc.(Stats); ok {
			d.SpoolDepth, d.SpoolDropped = c.sp.depth(), c.sp.meta.Dropped
			doc = d
		}
	}
	raw, err := encodeDoc(kind, doc)
	if err != nil {
		return fmt.Errorf("collector client: %w", err)
	}
	rec := Record{Agent: c.opts.Agent, Kind: kind, Time: time.Now().UTC(), Doc: raw}
	if err := c.sp.append(&rec); err != nil {
		return fmt.Errorf("collector client: spool: %w", err)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Flush waits until every spooled record is acknowledged or ctx is done.
func (c *Client) Flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		depth := c.sp.depth()
		c.mu.Unlock()
		if depth == 0 {
			return nil
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("collector client: flush: %d records not delivered: %w", depth, ctx.Err())
		case <-c.done:
			return fmt.Errorf("collector client: flush: closed with %d records not delivered", depth)
		case <-t.C:
		}
	}
}

// Close tries for FlushTimeout to deliver what is spooled, then stops
// delivering and closes the spool; undelivered records stay spooled for
// the next client on the same directory.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FlushTimeout)
	err := c.Flush(ctx)
	cancel()
	if err != nil {
		c.log.Warn("collector client: closing with records spooled", "err", err)
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sp.close()
}

// deliverLoop delivers batches while there are any, backing off while the
// collector is unreachable.
func (c *Client) deliverLoop() {
	defer close(c.done)
	backoff := minBackoff
	failing := false
	for {
		n, err := c.deliverOnce()
		var retry <-chan time.Time
		switch {
		case err != nil:
			if !failing {
				c.log.Warn("collector client: delivery failed; records stay spooled", "err", err)
				failing = true
			}
			retry = time.After(backoff)
			backoff = min(2*backoff, maxBackoff)
		case n > 0:
			if failing {
				c.log.Info("collector client: delivering again")
				failing = false
			}
			backoff = minBackoff
			select {
			case <-c.stop:
				return
			default:
			}
			continue
		}
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-retry:
		}
	}
}

// deliverOnce sends one batch of spooled records and applies the
// acknowledgement. It returns how many records were acknowledged.
func (c *Client) deliverOnce() (int, error) {
	c.mu.Lock()
	batch, err := c.sp.peek(batchRecords, batchBytes)
	after := c.sp.after()
	epoch := c.sp.meta.Epoch
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	b := Batch{Agent: c.opts.Agent, Epoch: epoch, After: after, Records: make([]Record, len(batch))}
	for i := range batch {
		b.Records[i] = batch[i].rec
	}
	body, err := json.Marshal(&b)
	if err != nil {
		return 0, fmt.Errorf("encode batch: %w", err)
	}
	var ack Ack
	if err := c.api.Do(http.MethodPost, "/v1/records", bytes.NewReader(body), &ack); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.sp.meta.Acked
	if err := c.sp.ack(ack.Seq, batch); err != nil {
		return 0, err
	}
	if ack.Seq <= before {
		return 0, fmt.Errorf("collector acknowledged nothing of records %d-%d", batch[0].rec.Seq, batch[len(batch)-1].rec.Seq)
	}
	return int(ack.Seq - before), nil
}

// QueryClient reads what the collector stored; the CLI uses it.
type QueryClient struct {
	api *unixapi.Client
}

// NewQueryClient returns a query client for the collector on socket.
func NewQueryClient(socket string) *QueryClient {
	if socket == "" {
		socket = DefaultSocket
	}
	return &QueryClient{api: unixapi.NewClient("collector", socket, 30*time.Second)}
}

func (q *QueryClient) get(path string, f Filter, out any) error {
	if qs := f.values().Encode(); qs != "" {
		path += "?" + qs
	}
	return q.api.Do(http.MethodGet, path, nil, out)
}

// Workloads lists the workloads matching f.
func (q *QueryClient) Workloads(f Filter) ([]Workload, error) {
	var out []Workload
	return out, q.get("/v1/workloads", f, &out)
}

// Fingerprints lists the fingerprints matching f, grouped by image or
// service.
func (q *QueryClient) Fingerprints(f Filter) ([]FingerprintGroup, error) {
	var out []FingerprintGroup
	return out, q.get("/v1/fingerprints", f, &out)
}

// Policies lists the policies in force matching f.
func (q *QueryClient) Policies(f Filter) ([]StoredPolicy, error) {
	var out []StoredPolicy
	return out, q.get("/v1/policies", f, &out)
}

// Deviations lists the distinct deviations matching f, oldest first.
func (q *QueryClient) Deviations(f Filter) ([]StoredDeviation, error) {
	var out []StoredDeviation
	return out, q.get("/v1/deviations", f, &out)
}

// Flags lists the flags matching f (policy and since only), oldest first.
func (q *QueryClient) Flags(f Filter) ([]StoredFlag, error) {
	var out []StoredFlag
	return out, q.get("/v1/flags", f, &out)
}

// Agents lists the agents the collector heard from, with their stats.
func (q *QueryClient) Agents() ([]AgentState, error) {
	var out []AgentState
	return out, q.get("/v1/agents", Filter{}, &out)
}
