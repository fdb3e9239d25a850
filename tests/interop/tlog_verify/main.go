// Command tlog-verify checks the evidence a flamingock-es log hands an auditor using code
// nobody on the flamingock-es team wrote: the Go checksum database's packages
// golang.org/x/mod/sumdb/note (signed notes, c2sp.org/signed-note) and
// golang.org/x/mod/sumdb/tlog (RFC 6962 Merkle proofs). If it and the Python side disagree,
// the Python side is wrong.
//
// Usage:
//
//	tlog-verify BUNDLE.json    (or "-" to read the bundle from standard input)
//
// The bundle is one JSON object; unknown fields are refused:
//
//	{
//	  "verifier_keys": ["<name>+<hex key ID>+<base64(0x01 || Ed25519 public key)>", ...],
//	  "origin": "example.org/log",
//	  "checkpoint": "<origin>\n<size>\n<base64 root>\n\n— <name> <base64 signature>\n",
//	  "leaf": {"index": 5, "data": "<base64 leaf bytes>", "hash": "<base64 leaf hash>"},
//	  "inclusion_proof": ["<base64 hash>", ...],
//	  "old_checkpoint": "<a signed note like checkpoint>",
//	  "consistency_proof": ["<base64 hash>", ...]
//	}
//
// Its fields:
//
//   - verifier_keys (required): the keys trusted to sign checkpoints, as note.NewVerifier
//     reads them. Signatures by other keys (a witness's cosignature, say) are ignored.
//   - origin (optional): when given, the checkpoints' origin line must equal it.
//   - checkpoint (required): a c2sp.org/tlog-checkpoint signed note: origin, decimal tree
//     size, base64 root hash, optional extension lines, then the signatures.
//   - leaf (required): the leaf's 0-based index, and its data (hashed as tlog.RecordHash
//     does, SHA-256(0x00 || data)) or its leaf hash, or both (they must then agree).
//   - inclusion_proof (required, may be empty): the RFC 6962 audit path of the leaf in the
//     tree of the checkpoint's size, the leaf's sibling first (a tlog.RecordProof).
//   - old_checkpoint, consistency_proof (optional, together): an earlier checkpoint of the
//     same log and the RFC 6962 consistency proof from its size to the checkpoint's (a
//     tlog.TreeProof; empty when the sizes are equal or the old tree is empty).
//
// It also reads the proof bundles flamingock-es writes (`flamingock-es prove`, and proof.json
// and consistency/*.json inside an `evidence` file): a JSON object whose "format" is
// "flamingock-es/proof/v1", with the same verifier_keys, origin, checkpoint, old_checkpoint
// and consistency_proof, and a list "leaves" of {"index", "record" (base64 leaf bytes: the
// audit event as stored), "inclusion_proof"}; every leaf is checked. Its other fields (keys,
// witnesses, time-stamps, positions) are for other tools and ignored here.
//
// On success it prints one "ok ..." line per check on standard output and exits 0. Otherwise
// it prints "FAIL: <reason>" on standard error and exits 1 (2 when the bundle itself cannot
// be read).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type leaf struct {
	Index *int64  `json:"index"`
	Data  *string `json:"data"`
	Hash  *string `json:"hash"`
}

// projectBundle is the part of a flamingock-es proof bundle these checks read.
type projectBundle struct {
	Format       string   `json:"format"`
	VerifierKeys []string `json:"verifier_keys"`
	Origin       *string  `json:"origin"`
	Checkpoint   string   `json:"checkpoint"`
	Leaves       []struct {
		Index          *int64   `json:"index"`
		Record         *string  `json:"record"`
		InclusionProof []string `json:"inclusion_proof"`
	} `json:"leaves"`
	OldCheckpoint    *string   `json:"old_checkpoint"`
	ConsistencyProof *[]string `json:"consistency_proof"`
}

const projectFormat = "flamingock-es/proof/v1"

type bundle struct {
	VerifierKeys     []string  `json:"verifier_keys"`
	Origin           *string   `json:"origin"`
	Checkpoint       string    `json:"checkpoint"`
	Leaf             *leaf     `json:"leaf"`
	InclusionProof   *[]string `json:"inclusion_proof"`
	OldCheckpoint    *string   `json:"old_checkpoint"`
	ConsistencyProof *[]string `json:"consistency_proof"`
}

// checkpoint is the part of a tlog-checkpoint note text the proofs need.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// failure is a check that did not hold (exit 1); any other error means an unreadable bundle.
type failure struct{ reason string }

func (f failure) Error() string { return f.reason }

func fail(format string, args ...any) error { return failure{fmt.Sprintf(format, args...)} }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tlog-verify BUNDLE.json (or - for standard input)")
		os.Exit(2)
	}
	err := run(os.Args[1], os.Stdout)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
	var f failure
	if errors.As(err, &f) {
		os.Exit(1)
	}
	os.Exit(2)
}

func run(path string, out io.Writer) error {
	raw, err := readInput(path)
	if err != nil {
		return err
	}
	var probe struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.Format == projectFormat {
		return runProject(raw, out)
	}
	b, err := readBundle(raw)
	if err != nil {
		return err
	}

	verifiers, err := parseVerifiers(b.VerifierKeys)
	if err != nil {
		return err
	}

	current, err := openCheckpoint("checkpoint", b.Checkpoint, verifiers, b.Origin, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ok checkpoint origin=%s size=%d root=%s\n", current.origin, current.size, current.root)

	if err := checkInclusion(b, current, out); err != nil {
		return err
	}

	if b.OldCheckpoint == nil {
		return nil
	}
	origin := current.origin
	old, err := openCheckpoint("old checkpoint", *b.OldCheckpoint, verifiers, &origin, out)
	if err != nil {
		return err
	}
	return checkConsistency(old, current, *b.ConsistencyProof, out)
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// runProject checks a flamingock-es bundle: its checkpoint, every leaf, and the consistency
// proof when there is one, each with the same code as the plain bundle.
func runProject(raw []byte, out io.Writer) error {
	var p projectBundle
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("bundle: %v", err)
	}
	if len(p.VerifierKeys) == 0 || p.Checkpoint == "" {
		return errors.New("bundle: verifier_keys and checkpoint are required")
	}
	if (p.OldCheckpoint == nil) != (p.ConsistencyProof == nil) {
		return errors.New("bundle: old_checkpoint and consistency_proof go together")
	}
	verifiers, err := parseVerifiers(p.VerifierKeys)
	if err != nil {
		return err
	}
	current, err := openCheckpoint("checkpoint", p.Checkpoint, verifiers, p.Origin, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ok checkpoint origin=%s size=%d root=%s\n", current.origin, current.size, current.root)
	for i, l := range p.Leaves {
		if l.Index == nil || l.Record == nil || l.InclusionProof == nil {
			return fmt.Errorf("bundle: leaves[%d] needs index, record and inclusion_proof", i)
		}
		proof := l.InclusionProof
		one := &bundle{Leaf: &leaf{Index: l.Index, Data: l.Record}, InclusionProof: &proof}
		if err := checkInclusion(one, current, out); err != nil {
			return err
		}
	}
	if p.OldCheckpoint == nil {
		return nil
	}
	origin := current.origin
	old, err := openCheckpoint("old checkpoint", *p.OldCheckpoint, verifiers, &origin, out)
	if err != nil {
		return err
	}
	return checkConsistency(old, current, *p.ConsistencyProof, out)
}

func readBundle(raw []byte) (*bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	if dec.More() {
		return nil, errors.New("bundle: more than one JSON value")
	}
	switch {
	case len(b.VerifierKeys) == 0:
		return nil, errors.New("bundle: verifier_keys is required")
	case b.Checkpoint == "":
		return nil, errors.New("bundle: checkpoint is required")
	case b.Leaf == nil || b.Leaf.Index == nil:
		return nil, errors.New("bundle: leaf.index is required")
	case b.Leaf.Data == nil && b.Leaf.Hash == nil:
		return nil, errors.New("bundle: leaf needs data or hash")
	case b.InclusionProof == nil:
		return nil, errors.New("bundle: inclusion_proof is required")
	case (b.OldCheckpoint == nil) != (b.ConsistencyProof == nil):
		return nil, errors.New("bundle: old_checkpoint and consistency_proof go together")
	}
	return &b, nil
}

func parseVerifiers(vkeys []string) (note.Verifiers, error) {
	list := make([]note.Verifier, 0, len(vkeys))
	for i, vkey := range vkeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("verifier_keys[%d] %q: %v", i, vkey, err)
		}
		list = append(list, v)
	}
	return note.VerifierList(list...), nil
}

// openCheckpoint verifies the note's signatures with note.Open, then parses its text.
func openCheckpoint(what, msg string, verifiers note.Verifiers, origin *string, out io.Writer) (checkpoint, error) {
	n, err := note.Open([]byte(msg), verifiers)
	if err != nil {
		return checkpoint{}, fail("%s: signature: %v", what, err)
	}
	for _, sig := range n.Sigs {
		fmt.Fprintf(out, "ok signature %s: %s+%08x\n", what, sig.Name, sig.Hash)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return checkpoint{}, fail("%s: %v", what, err)
	}
	if origin != nil && c.origin != *origin {
		return checkpoint{}, fail("%s: origin %q, expected %q", what, c.origin, *origin)
	}
	return c, nil
}

var decimal = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// parseCheckpoint reads a c2sp.org/tlog-checkpoint note text: at least three non-empty lines
// (origin, tree size in decimal without leading zeroes, base64 root hash), extension lines
// after them ignored.
func parseCheckpoint(text string) (checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return checkpoint{}, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return checkpoint{}, errors.New("checkpoint has fewer than three lines")
	}
	for i, line := range lines {
		if line == "" {
			return checkpoint{}, fmt.Errorf("checkpoint line %d is empty", i+1)
		}
	}
	if !decimal.MatchString(lines[1]) {
		return checkpoint{}, fmt.Errorf("checkpoint size %q is not a decimal number", lines[1])
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint size %q: %v", lines[1], err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil || root.String() != lines[2] {
		return checkpoint{}, fmt.Errorf("checkpoint root %q is not a base64 SHA-256 hash", lines[2])
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

func parseHashes(what string, encoded []string) ([]tlog.Hash, error) {
	hashes := make([]tlog.Hash, len(encoded))
	for i, s := range encoded {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return nil, fail("%s[%d] %q: %v", what, i, s, err)
		}
		hashes[i] = h
	}
	return hashes, nil
}

func checkInclusion(b *bundle, c checkpoint, out io.Writer) error {
	index := *b.Leaf.Index
	var leafHash tlog.Hash
	if b.Leaf.Data != nil {
		data, err := base64.StdEncoding.DecodeString(*b.Leaf.Data)
		if err != nil {
			return fmt.Errorf("leaf.data: %v", err)
		}
		leafHash = tlog.RecordHash(data)
	}
	if b.Leaf.Hash != nil {
		h, err := tlog.ParseHash(*b.Leaf.Hash)
		if err != nil {
			return fmt.Errorf("leaf.hash: %v", err)
		}
		if b.Leaf.Data != nil && h != leafHash {
			return fail("leaf.hash %s is not the hash of leaf.data (%s)", h, leafHash)
		}
		leafHash = h
	}
	proof, err := parseHashes("inclusion_proof", *b.InclusionProof)
	if err != nil {
		return err
	}
	if index < 0 || index >= c.size {
		return fail("leaf index %d is not in a tree of size %d", index, c.size)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), c.size, c.root, index, leafHash); err != nil {
		return fail("inclusion of leaf %d in the tree of size %d: %v", index, c.size, err)
	}
	fmt.Fprintf(out, "ok inclusion index=%d size=%d leaf=%s\n", index, c.size, leafHash)
	return nil
}

func checkConsistency(old, current checkpoint, encoded []string, out io.Writer) error {
	proof, err := parseHashes("consistency_proof", encoded)
	if err != nil {
		return err
	}
	switch {
	case old.size > current.size:
		return fail("old checkpoint size %d is larger than the checkpoint's %d", old.size, current.size)
	case old.size == 0:
		// tlog.CheckTree takes no empty old tree: it is a prefix of every tree, with the root
		// of the empty tree (tlog.TreeHash(0, ...)), and needs no proof.
		empty, err := tlog.TreeHash(0, nil)
		if err != nil {
			return err
		}
		if old.root != empty || len(proof) != 0 {
			return fail("an empty old tree has root %s and an empty proof", empty)
		}
	default:
		if err := tlog.CheckTree(tlog.TreeProof(proof), current.size, current.root, old.size, old.root); err != nil {
			return fail("consistency of size %d with size %d: %v", old.size, current.size, err)
		}
	}
	fmt.Fprintf(out, "ok consistency old_size=%d new_size=%d\n", old.size, current.size)
	return nil
}
