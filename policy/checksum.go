package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Checksum is a stable hash of the spec: its JSON form (struct fields in
// declaration order) hashed with SHA-256, the first 16 bytes in hex. Equal
// specs have equal checksums, so repeats of one deviation share theirs.
func (s *Spec) Checksum() string {
	data, err := json.Marshal(s)
	if err != nil {
		// A Spec always marshals; keep the checksum defined anyway.
		data = []byte(err.Error())
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}
