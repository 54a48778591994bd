package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Position is a place in an input file. Line and Column count from 1; a
// zero Line means the position is unknown (in-memory objects).
type Position struct {
	File         string
	Line, Column int
}

// String formats the position as "file:line:column", leaving out the parts
// that are unknown.
func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Column)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
}

// Problem is one validation error: where it is, the path of the offending
// field (like spec.networkPolicy.ingress[0].ports[1].endPort) and why it is
// wrong.
type Problem struct {
	Pos     Position
	Path    string
	Message string
}

// String formats the problem as "file:line:column: field.path: reason",
// leaving out the position or path when they are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if s := p.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in an input, sorted by position. It is
// the error returned by Load and the Validate functions.
type Problems []Problem

// Error lists the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by file, line, column and then path.
func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Column != b.Pos.Column {
			return a.Pos.Column < b.Pos.Column
		}
		return a.Path < b.Path
	})
}

// Document is one loaded document: exactly one of Fingerprint, Policy,
// Deviation and Flag is set. Pos is where the document starts. A
// FingerprintGroup loads as one Document per fingerprint, each with Group
// set to the group's kind and Pos where its fingerprint starts.
type Document struct {
	Pos        Position
	APIVersion string
	Kind       string
	Group      string
	// Notes lists what the loader filled in that the input left out (a
	// policy without spec.mode is loaded in audit mode).
	Notes Problems

	Fingerprint *Fingerprint
	Policy      *WorkloadPolicy
	Deviation   *Deviation
	Flag        *Flag
}

// Object returns the document's object (the one pointer that is set), or
// nil for an empty Document.
func (d Document) Object() any {
	switch {
	case d.Fingerprint != nil:
		return d.Fingerprint
	case d.Policy != nil:
		return d.Policy
	case d.Deviation != nil:
		return d.Deviation
	case d.Flag != nil:
		return d.Flag
	}
	return nil
}

// LoadFile reads and loads the file at path; see Load.
func LoadFile(path string) ([]Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Load(path, data)
}

// Load parses every document in data (YAML or JSON; several documents
// separated by "---", or a top-level list of documents) and checks each
// strictly against the schema and the validation rules. name is used in
// positions and to name a bare policy spec (a document without apiVersion
// and kind whose keys are spec fields). On invalid input the error is
// Problems listing every problem found, and no documents are returned.
func Load(name string, data []byte) ([]Document, error) {
	var probs Problems
	var docs []Document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			probs = append(probs, syntaxProblem(name, data, err))
			break
		}
		if len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document
		}
		items := []*yaml.Node{root}
		if root.Kind == yaml.SequenceNode {
			items = root.Content
		}
		for _, item := range items {
			l := &docLoader{file: name, pos: map[string]Position{}, nodes: map[string]*yaml.Node{}}
			got, ok := l.document(item)
			probs = append(probs, l.probs...)
			if ok {
				docs = append(docs, got...)
			}
		}
	}
	if len(probs) == 0 && len(docs) == 0 {
		probs = append(probs, Problem{Pos: Position{File: name, Line: 1, Column: 1}, Message: "no documents found"})
	}
	if len(probs) > 0 {
		probs.sort()
		return nil, probs
	}
	return docs, nil
}

// splitYAMLError splits a yaml.v3 error "yaml: line N: message" into N
// and message; line is 0 when the error names no line.
func splitYAMLError(err error) (line int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	n, convErr := strconv.Atoi(num)
	if !ok || convErr != nil {
		return 0, msg
	}
	return n, text
}

// refineBudget bounds the bytes syntaxProblem re-parses to find the line
// that breaks a file; past it the line yaml.v3 reported is used.
const refineBudget = 4 << 20

// syntaxProblem turns a yaml.v3 syntax error into a Problem. yaml.v3 reports
// the line where the enclosing block starts, not the line that broke it, so
// for inputs of reasonable size the offending line is found as the first
// line whose inclusion makes the input fail to parse.
func syntaxProblem(name string, data []byte, err error) Problem {
	line, msg := splitYAMLError(err)
	msg = "invalid YAML: " + msg
	bad := firstFailingLine(data, line)
	if bad != 0 && line != 0 && bad != line {
		msg += fmt.Sprintf(" (inside the block that starts on line %d)", line)
	}
	switch {
	case bad != 0:
		line = bad
	case line == 0:
		line = 1
	}
	return Problem{Pos: Position{File: name, Line: line, Column: firstColumn(data, line)}, Message: msg}
}

// firstFailingLine returns the 1-based number of the first line L at or
// after line from such that the input cut after line L does not parse, or 0
// if there is none or finding it would parse more than refineBudget bytes.
// Lines before from are not tried: yaml.v3 reports the start of the block
// that contains the error, so the error is not earlier.
func firstFailingLine(data []byte, from int) int {
	end, budget := 0, refineBudget
	for line := 1; end < len(data) && budget > 0; line++ {
		next := bytes.IndexByte(data[end:], '\n')
		if next < 0 {
			end = len(data)
		} else {
			end += next + 1
		}
		if line < from {
			continue
		}
		budget -= end
		if !parses(data[:end]) {
			return line
		}
	}
	return 0
}

// parses reports whether data is a well-formed YAML stream.
func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// firstColumn returns the 1-based column of the first non-blank character
// of the given line, or 1.
func firstColumn(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	trimmed := bytes.TrimLeft(l, " \t")
	if len(trimmed) == 0 {
		return 1
	}
	return len(l) - len(trimmed) + 1
}

// docLoader checks and decodes one document, recording the position of
// every field path it visits so that validation problems can be placed.
type docLoader struct {
	file  string
	probs Problems
	pos   map[string]Position
	nodes map[string]*yaml.Node
}

func (l *docLoader) position(n *yaml.Node) Position {
	return Position{File: l.file, Line: n.Line, Column: n.Column}
}

func (l *docLoader) addf(n *yaml.Node, path, format string, args ...any) {
	l.probs = append(l.probs, Problem{Pos: l.position(n), Path: path, Message: fmt.Sprintf(format, args...)})
}

// place returns the recorded position of path or of its nearest recorded
// ancestor.
func (l *docLoader) place(path string) Position {
	for {
		if p, ok := l.pos[path]; ok {
			return p
		}
		if path == "" {
			return Position{File: l.file}
		}
		path = parentPath(path)
	}
}

// parentPath drops the last element of a field path: "a.b[2]" → "a.b",
// "a.b" → "a", "a" → "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// kindClass is what a document kind decodes to.
type kindClass int

const (
	classFingerprint kindClass = iota + 1
	classPolicy
	classDeviation
	classFlag
	classGroup
)

// classOf returns the class of an apiVersion/kind pair, or 0.
func classOf(apiVersion, kind string) kindClass {
	switch apiVersion {
	case APIVersionSpyderbat:
		switch kind {
		case KindSpyderbatFingerprint:
			return classFingerprint
		case KindSpyderbatPolicy:
			return classPolicy
		case KindGuardianDeviation:
			return classDeviation
		case KindFingerprintGroup:
			return classGroup
		case KindSpyderbatBaseline:
			return classPolicy
		}
	case APIVersionBulwark:
		switch kind {
		case KindFingerprint:
			return classFingerprint
		case KindWorkloadPolicy:
			return classPolicy
		case KindDeviation:
			return classDeviation
		case KindFlag:
			return classFlag
		}
	}
	return 0
}

// mappingValue returns the value node of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// document checks n and, when it has no problems, decodes it: into one
// Document, or one per fingerprint for a FingerprintGroup.
func (l *docLoader) document(n *yaml.Node) ([]Document, bool) {
	l.pos[""] = l.position(n)
	if n.Kind != yaml.MappingNode {
		l.addf(n, "", "a document must be a mapping, got %s", describe(n))
		return nil, false
	}
	doc := Document{Pos: l.position(n)}
	_, av := mappingValue(n, "apiVersion")
	_, kv := mappingValue(n, "kind")
	if av == nil && kv == nil {
		return l.bareSpec(n, doc)
	}
	switch {
	case av == nil:
		l.addf(n, "apiVersion", "required: %s or %s", APIVersionSpyderbat, APIVersionBulwark)
		return nil, false
	case av.Kind != yaml.ScalarNode:
		l.addf(av, "apiVersion", "must be a string, got %s", describe(av))
		return nil, false
	case kv == nil:
		l.addf(n, "kind", "required")
		return nil, false
	case kv.Kind != yaml.ScalarNode:
		l.addf(kv, "kind", "must be a string, got %s", describe(kv))
		return nil, false
	}
	doc.APIVersion, doc.Kind = av.Value, kv.Value
	class := classOf(doc.APIVersion, doc.Kind)
	if class == 0 {
		if doc.APIVersion != APIVersionSpyderbat && doc.APIVersion != APIVersionBulwark {
			l.addf(av, "apiVersion", "unknown apiVersion %q: want %s or %s", av.Value, APIVersionSpyderbat, APIVersionBulwark)
		} else {
			l.addf(kv, "kind", "unknown kind %q for apiVersion %s: want %s", kv.Value, av.Value, kindNames(av.Value))
		}
		return nil, false
	}
	if class == classGroup {
		return l.group(n, doc)
	}
	var obj any
	switch class {
	case classFingerprint:
		doc.Fingerprint = &Fingerprint{}
		obj = doc.Fingerprint
	case classPolicy:
		doc.Policy = &WorkloadPolicy{}
		obj = doc.Policy
	case classDeviation:
		doc.Deviation = &Deviation{}
		obj = doc.Deviation
	case classFlag:
		doc.Flag = &Flag{}
		obj = doc.Flag
	}
	l.walk(n, reflect.TypeOf(obj).Elem(), "")
	if class == classPolicy {
		l.requireRuleLists()
	}
	if len(l.probs) > 0 {
		return nil, false
	}
	if err := n.Decode(obj); err != nil {
		l.addf(n, "", "decode: %v", err)
		return nil, false
	}
	normalize(reflect.ValueOf(obj).Elem())
	var v validator
	switch class {
	case classFingerprint:
		v.keepExtra(doc.Fingerprint.Metadata.Extra, "metadata")
		v.fingerprint(doc.Fingerprint)
	case classPolicy:
		l.defaultMode(&doc, &doc.Policy.Spec)
		v.keepExtra(doc.Policy.Metadata.Extra, "metadata")
		v.policy(doc.Policy)
	case classDeviation:
		v.keepExtra(doc.Deviation.Metadata.Extra, "metadata")
		v.deviation(doc.Deviation)
	case classFlag:
		v.flag(doc.Flag)
	}
	return []Document{doc}, l.placeAll(v.probs)
}

// defaultMode loads a policy that leaves spec.mode out in audit mode, so
// that nothing is blocked that nobody chose to block, and notes it.
func (l *docLoader) defaultMode(doc *Document, s *Spec) {
	if s.Mode != "" {
		return
	}
	s.Mode = ModeAudit
	doc.Notes = append(doc.Notes, Problem{Pos: l.place("spec"), Path: "spec.mode",
		Message: "not set: loaded in audit mode (deviations are reported, nothing is blocked)"})
}

// keepExtra replaces the values of unknown metadata keys with what JSON
// makes of them (numbers become float64, timestamps strings), so that they
// print back the same in YAML and in JSON; a value JSON cannot hold (a
// mapping with keys that are not strings) is a problem.
func (v *validator) keepExtra(extra map[string]any, path string) {
	for k, x := range extra {
		b, err := json.Marshal(x)
		var y any
		if err == nil {
			err = json.Unmarshal(b, &y)
		}
		if err != nil {
			v.addf(path+"."+k, "cannot be kept as it is: %v", err)
			continue
		}
		extra[k] = y
	}
}

// group checks and decodes a FingerprintGroup into one Document per
// fingerprint. Each fingerprint is checked as a document of its own; its
// problems carry paths from the group (data.fingerprints[i].spec...).
func (l *docLoader) group(n *yaml.Node, doc Document) ([]Document, bool) {
	l.walk(n, reflect.TypeFor[FingerprintGroup](), "")
	if _, data := mappingValue(n, "data"); data == nil {
		l.addf(n, "data", "required: a FingerprintGroup holds its fingerprints in data.fingerprints")
	}
	if len(l.probs) > 0 {
		return nil, false
	}
	var g FingerprintGroup
	if err := n.Decode(&g); err != nil {
		l.addf(n, "", "decode: %v", err)
		return nil, false
	}
	normalize(reflect.ValueOf(&g).Elem())
	var docs []Document
	var gv validator
	gv.keepExtra(g.Metadata.Extra, "metadata")
	ok := l.placeAll(gv.probs)
	for i := range g.Data.Fingerprints {
		fp := &g.Data.Fingerprints[i]
		prefix := fmt.Sprintf("data.fingerprints[%d]", i)
		var v validator
		v.keepExtra(fp.Metadata.Extra, "metadata")
		v.fingerprint(fp)
		for j := range v.probs {
			v.probs[j].Path = joinPath(prefix, v.probs[j].Path)
		}
		ok = l.placeAll(v.probs) && ok
		docs = append(docs, Document{Pos: l.place(prefix), APIVersion: fp.APIVersion, Kind: fp.Kind,
			Group: doc.Kind, Fingerprint: fp})
	}
	if len(docs) == 0 {
		l.addf(n, "data.fingerprints", "a FingerprintGroup without fingerprints")
		return nil, false
	}
	return docs, ok
}

// bareSpec loads a document holding only policy spec fields as a
// WorkloadPolicy named after the file, its type taken from its selector.
func (l *docLoader) bareSpec(n *yaml.Node, doc Document) ([]Document, bool) {
	l.pos["spec"] = l.position(n)
	l.walk(n, reflect.TypeFor[Spec](), "spec")
	l.requireRuleLists()
	if len(l.probs) > 0 {
		return nil, false
	}
	p := &WorkloadPolicy{APIVersion: APIVersionBulwark, Kind: KindWorkloadPolicy}
	if err := n.Decode(&p.Spec); err != nil {
		l.addf(n, "", "decode: %v", err)
		return nil, false
	}
	normalize(reflect.ValueOf(p).Elem())
	p.Metadata.Name = strings.TrimSuffix(filepath.Base(l.file), filepath.Ext(l.file))
	switch {
	case p.Spec.ContainerSelector != nil:
		p.Metadata.Type = TypeContainer
	case p.Spec.ServiceSelector != nil:
		p.Metadata.Type = TypeLinuxService
	default:
		l.addf(n, "", "a document without apiVersion and kind is read as a policy spec, which needs containerSelector or serviceSelector")
		return nil, false
	}
	doc.APIVersion, doc.Kind, doc.Policy = p.APIVersion, p.Kind, p
	l.defaultMode(&doc, &p.Spec)
	var v validator
	v.policy(p)
	return []Document{doc}, l.placeAll(v.probs)
}

// requireRuleLists checks that a policy's networkPolicy spells out both
// ingress and egress (an empty list allows nothing).
func (l *docLoader) requireRuleLists() {
	np, ok := l.nodes["spec.networkPolicy"]
	if !ok || np.Kind != yaml.MappingNode {
		return
	}
	for _, key := range []string{"ingress", "egress"} {
		if k, _ := mappingValue(np, key); k == nil {
			path := "spec.networkPolicy." + key
			msg := fmt.Sprintf("required in a policy (write %s: [] to allow none)", key)
			l.probs = append(l.probs, Problem{Pos: l.place(path), Path: path, Message: msg})
		}
	}
}

// placeAll gives validation problems the positions of their paths and
// reports whether there were none.
func (l *docLoader) placeAll(ps Problems) bool {
	for _, p := range ps {
		p.Pos = l.place(p.Path)
		l.probs = append(l.probs, p)
	}
	return len(ps) == 0
}

func kindNames(apiVersion string) string {
	if apiVersion == APIVersionSpyderbat {
		return strings.Join([]string{KindSpyderbatFingerprint, KindFingerprintGroup, KindSpyderbatPolicy,
			KindSpyderbatBaseline, KindGuardianDeviation}, ", ")
	}
	return strings.Join([]string{KindFingerprint, KindWorkloadPolicy, KindDeviation, KindFlag}, ", ")
}

// describe names the kind of a node for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		default:
			return strconv.Quote(n.Value)
		}
	}
	return "a document"
}

// stringLike reports whether a scalar with this tag may stand where a
// string is expected (YAML reads "port: 80" as an int, "v: 1.0" as a float).
func stringLike(tag string) bool {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return true
	}
	return false
}

// walk checks node n against Go type t (a type from types.go, read through
// its yaml tags): unknown fields, duplicate keys, wrong kinds and scalar
// values that do not convert. It records the position of every path.
func (l *docLoader) walk(n *yaml.Node, t reflect.Type, path string) {
	l.nodes[path] = n
	if n.Kind == yaml.AliasNode {
		l.addf(n, path, "YAML aliases are not supported")
		return
	}
	tag := n.ShortTag()
	if !strings.HasPrefix(tag, "!!") {
		l.addf(n, path, "unsupported YAML tag %s", n.Tag)
		return
	}
	if n.Kind == yaml.ScalarNode && tag == "!!null" {
		return // null is the same as leaving the field out
	}
	if t == reflect.TypeFor[StringList]() {
		if n.Kind == yaml.SequenceNode {
			l.walk(n, reflect.TypeFor[[]string](), path)
			return
		}
		if n.Kind != yaml.ScalarNode || !stringLike(tag) {
			l.addf(n, path, "must be a string or a list of strings, got %s", describe(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		l.walk(n, t.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			l.addf(n, path, "must be a mapping, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				l.addf(k, path, "keys must be strings, got %s", describe(k))
				continue
			}
			fp := joinPath(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				l.addf(k, fp, "duplicate key (first at line %d)", first.Line)
				continue
			}
			seen[k.Value] = k
			l.pos[fp] = l.position(k)
			ft, ok := fields[k.Value]
			switch {
			case ok:
				l.walk(v, ft, fp)
			case hasInlineMap(t):
				l.plain(v, fp) // kept in the struct's Extra
			default:
				l.addf(k, fp, "unknown field")
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.addf(n, path, "must be a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			l.pos[ep] = l.position(e)
			l.walk(e, t.Elem(), ep)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			l.addf(n, path, "must be a mapping, got %s", describe(n))
			return
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || !stringLike(k.ShortTag()) {
				l.addf(k, path, "keys must be strings, got %s", describe(k))
				continue
			}
			fp := path + "[" + k.Value + "]"
			if first, dup := seen[k.Value]; dup {
				l.addf(k, fp, "duplicate key (first at line %d)", first.Line)
				continue
			}
			seen[k.Value] = k
			l.pos[fp] = l.position(k)
			l.walk(v, t.Elem(), fp)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode || !stringLike(tag) {
			l.addf(n, path, "must be a string, got %s", describe(n))
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			l.addf(n, path, "must be true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int64, reflect.Uint64:
		v := reflect.New(t)
		if n.Kind != yaml.ScalarNode || tag != "!!int" || n.Decode(v.Interface()) != nil {
			l.addf(n, path, "must be an integer, got %s", describe(n))
		}
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			l.addf(n, path, "must be a number, got %s", describe(n))
		} else if math.IsInf(f, 0) || math.IsNaN(f) {
			l.addf(n, path, "must be a finite number, got %s", n.Value)
		}
	default:
		l.addf(n, path, "field of unsupported type %s", t)
	}
}

// plain checks a value kept as it is (an unknown metadata key): plain YAML
// without aliases or custom tags, so that it is written back unchanged.
func (l *docLoader) plain(n *yaml.Node, path string) {
	if n.Kind == yaml.AliasNode {
		l.addf(n, path, "YAML aliases are not supported")
		return
	}
	if !strings.HasPrefix(n.ShortTag(), "!!") {
		l.addf(n, path, "unsupported YAML tag %s", n.Tag)
		return
	}
	for _, c := range n.Content {
		l.plain(c, path)
	}
}

// hasInlineMap reports whether struct type t keeps unknown keys in an
// inlined map (Metadata.Extra).
func hasInlineMap(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Map {
			return true
		}
	}
	return false
}

// yamlFields maps the yaml names of t's fields, including those of inlined
// embedded structs, to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			if f.Type.Kind() == reflect.Map {
				continue // unknown keys: see hasInlineMap
			}
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// normalize replaces empty slices and maps with nil throughout v, so that
// "x: []" and a missing x load the same and documents compare equal after
// an encode/load round trip.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if !v.IsNil() && v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		for i := 0; i < v.Len(); i++ {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 && !v.IsNil() && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}
