package collector

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Spool layout: segment files named after the first sequence number they
// hold ("00000000000000000042.seg"), one JSON record per line, and
// spool.json with the spool's epoch, the highest acknowledged sequence
// number and the count of dropped records.
const (
	segmentSuffix = ".seg"
	spoolMetaFile = "spool.json"
	// segmentsPerSpool is how many segments a full spool spans: the
	// spool drops its oldest segment, so at most 1/segmentsPerSpool of it
	// goes at once.
	segmentsPerSpool = 8
)

// spoolMeta is the persistent state of a spool besides its segments.
type spoolMeta struct {
	Epoch   string `json:"epoch"`
	Acked   uint64 `json:"acked"`
	Dropped uint64 `json:"dropped"`
}

// segment is one spool file.
type segment struct {
	first, last uint64 // sequence numbers of its first and last record
	size        int64
}

// spool is a bounded on-disk queue of records. It is not safe for
// concurrent use; Client serialises access.
type spool struct {
	dir    string
	max    int64
	segMax int64 // size of a segment
	recMax int64 // size of a record
	meta   spoolMeta
	next   uint64    // sequence number of the next record
	segs   []segment // oldest first
	total  int64     // bytes in segs
	cur    *os.File  // append handle of the last segment, or nil

	// The read position: the offset in the segment starting at readSeg of
	// the first record not known to be acknowledged.
	readSeg uint64
	readOff int64
}

// openSpool opens the spool in dir (created 0700 if missing) and recovers
// its state: segments are scanned, a torn last line (the writer died in
// the middle of it) is cut off and fully acknowledged segments removed.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool %s: %w", dir, err)
	}
	segMax := max(maxBytes/segmentsPerSpool, 1)
	sp := &spool{dir: dir, max: maxBytes, segMax: segMax, recMax: min(segMax, maxRecordBytes)}
	data, err := os.ReadFile(filepath.Join(dir, spoolMetaFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("spool epoch: %w", err)
		}
		sp.meta.Epoch = hex.EncodeToString(b)
		if err := sp.saveMeta(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read spool state: %w", err)
	default:
		if err := json.Unmarshal(data, &sp.meta); err != nil || sp.meta.Epoch == "" {
			return nil, fmt.Errorf("spool state %s is corrupt: %v", filepath.Join(dir, spoolMetaFile), err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool %s: %w", dir, err)
	}
	var firsts []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		firsts = append(firsts, first)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	sp.next = sp.meta.Acked + 1
	for _, first := range firsts {
		seg, err := sp.recoverSegment(first)
		if err != nil {
			return nil, err
		}
		if seg.size == 0 || seg.last <= sp.meta.Acked {
			if err := os.Remove(sp.segPath(first)); err != nil {
				return nil, fmt.Errorf("remove spool segment: %w", err)
			}
			continue
		}
		sp.segs = append(sp.segs, seg)
		sp.total += seg.size
		sp.next = max(sp.next, seg.last+1)
	}
	if len(sp.segs) > 0 {
		sp.readSeg = sp.segs[0].first
	}
	return sp, nil
}

func (sp *spool) segPath(first uint64) string {
	return filepath.Join(sp.dir, fmt.Sprintf("%020d%s", first, segmentSuffix))
}

// recoverSegment scans a segment for its last record and truncates it
// after the last complete one.
func (sp *spool) recoverSegment(first uint64) (segment, error) {
	path := sp.segPath(first)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return segment{}, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	seg := segment{first: first}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // a trailing partial line is cut off below
		}
		if err != nil {
			return segment{}, fmt.Errorf("read spool segment %s: %w", path, err)
		}
		var rec Record
		if json.Unmarshal(line, &rec) != nil {
			break
		}
		seg.last = rec.Seq
		seg.size += int64(len(line))
	}
	if err := f.Truncate(seg.size); err != nil {
		return segment{}, fmt.Errorf("truncate spool segment %s: %w", path, err)
	}
	return seg, nil
}

// saveMeta writes spool.json atomically.
func (sp *spool) saveMeta() error {
	data, err := json.Marshal(sp.meta)
	if err != nil {
		return fmt.Errorf("encode spool state: %w", err)
	}
	tmp := filepath.Join(sp.dir, spoolMetaFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(sp.dir, spoolMetaFile)); err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	return nil
}

// depth returns the number of records not yet acknowledged.
func (sp *spool) depth() int {
	if len(sp.segs) == 0 {
		return 0
	}
	return int(sp.next - 1 - sp.after())
}

// after returns the sequence number before the first record the spool
// holds unacknowledged: everything up to it was acknowledged or dropped.
func (sp *spool) after() uint64 {
	if len(sp.segs) == 0 {
		return sp.next - 1
	}
	return max(sp.meta.Acked, sp.segs[0].first-1)
}

// append numbers a record, writes it to the newest segment and drops the
// oldest segments while the spool is over its bound. A dropped record may
// have been in flight and get stored after all: the drop count errs on
// the side of reporting.
func (sp *spool) append(rec *Record) error {
	rec.Seq = sp.next
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	line = append(line, '\n')
	if int64(len(line)) > sp.recMax {
		sp.meta.Dropped++
		if err := sp.saveMeta(); err != nil {
			return err
		}
		return fmt.Errorf("a %s record of %d bytes does not fit the spool (at most %d bytes per record)", rec.Kind, len(line), sp.recMax)
	}
	if sp.cur == nil || sp.segs[len(sp.segs)-1].size+int64(len(line)) > sp.segMax {
		if err := sp.rotate(); err != nil {
			return err
		}
	}
	if _, err := sp.cur.Write(line); err != nil {
		return fmt.Errorf("write spool segment: %w", err)
	}
	last := &sp.segs[len(sp.segs)-1]
	last.last = rec.Seq
	last.size += int64(len(line))
	sp.total += int64(len(line))
	sp.next++
	for sp.total > sp.max && len(sp.segs) > 1 {
		if err := sp.dropOldest(); err != nil {
			return err
		}
	}
	return nil
}

// rotate starts a new segment at the next sequence number.
func (sp *spool) rotate() error {
	if sp.cur != nil {
		if err := sp.cur.Close(); err != nil {
			return fmt.Errorf("close spool segment: %w", err)
		}
		sp.cur = nil
	}
	f, err := os.OpenFile(sp.segPath(sp.next), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	sp.cur = f
	sp.segs = append(sp.segs, segment{first: sp.next})
	if len(sp.segs) == 1 {
		sp.readSeg, sp.readOff = sp.next, 0
	}
	return nil
}

// dropOldest removes the oldest segment and counts its unacknowledged
// records as dropped.
func (sp *spool) dropOldest() error {
	seg := sp.segs[0]
	if seg.last > sp.meta.Acked {
		sp.meta.Dropped += seg.last - max(sp.meta.Acked, seg.first-1)
	}
	if err := sp.removeFirst(); err != nil {
		return err
	}
	return sp.saveMeta()
}

// removeFirst deletes the oldest segment and moves the read position past
// it when it was there.
func (sp *spool) removeFirst() error {
	seg := sp.segs[0]
	if err := os.Remove(sp.segPath(seg.first)); err != nil {
		return fmt.Errorf("remove spool segment: %w", err)
	}
	sp.segs = sp.segs[1:]
	sp.total -= seg.size
	if len(sp.segs) == 0 {
		if sp.cur != nil {
			sp.cur.Close()
			sp.cur = nil
		}
		return nil
	}
	if sp.readSeg == seg.first {
		sp.readSeg, sp.readOff = sp.segs[0].first, 0
	}
	return nil
}

// spooled is a record read back with the position just after it.
type spooled struct {
	rec     Record
	seg     uint64
	nextOff int64
}

// peek reads up to maxRecords unacknowledged records, at most about
// maxBytes, from the read position on.
func (sp *spool) peek(maxRecords int, maxBytes int64) ([]spooled, error) {
	var out []spooled
	var n int64
	for _, seg := range sp.segs {
		if seg.first < sp.readSeg {
			continue
		}
		off := int64(0)
		if seg.first == sp.readSeg {
			off = sp.readOff
		}
		if off >= seg.size {
			continue
		}
		f, err := os.Open(sp.segPath(seg.first))
		if err != nil {
			return nil, fmt.Errorf("open spool segment: %w", err)
		}
		r := bufio.NewReader(io.NewSectionReader(f, off, seg.size-off))
		for len(out) < maxRecords && n < maxBytes {
			line, err := r.ReadBytes('\n')
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("read spool segment: %w", err)
			}
			off += int64(len(line))
			var rec Record
			if err := json.Unmarshal(bytes.TrimSpace(line), &rec); err != nil {
				f.Close()
				return nil, fmt.Errorf("decode spooled record: %w", err)
			}
			if rec.Seq <= sp.meta.Acked {
				// Acknowledged before the position was known (after a
				// restart): move past it.
				if len(out) == 0 {
					sp.readSeg, sp.readOff = seg.first, off
				}
				continue
			}
			n += int64(len(line))
			out = append(out, spooled{rec: rec, seg: seg.first, nextOff: off})
		}
		f.Close()
		if len(out) >= maxRecords || n >= maxBytes {
			break
		}
	}
	return out, nil
}

// ack records that every record up to seq is stored: the read position
// moves past the last acknowledged record of batch and fully acknowledged
// segments are removed.
func (sp *spool) ack(seq uint64, batch []spooled) error {
	if seq <= sp.meta.Acked {
		return nil
	}
	sp.meta.Acked = seq
	for _, s := range batch {
		if s.rec.Seq <= seq {
			sp.readSeg, sp.readOff = s.seg, s.nextOff
		}
	}
	for len(sp.segs) > 0 && sp.segs[0].last <= seq && sp.segs[0].size > 0 {
		if err := sp.removeFirst(); err != nil {
			return err
		}
	}
	return sp.saveMeta()
}

// close closes the newest segment's file.
func (sp *spool) close() error {
	if sp.cur == nil {
		return nil
	}
	err := sp.cur.Close()
	sp.cur = nil
	if err != nil {
		return fmt.Errorf("close spool segment: %w", err)
	}
	return nil
}
