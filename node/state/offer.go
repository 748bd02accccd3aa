package state

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dtrain-dev/dtrain/netx"
)

// offerVersion is the first byte of a marshaled Offer.
const offerVersion = 1

// offerFixedLen is an Offer's encoding without the run id: version,
// epoch, size, hash, run id length.
const offerFixedLen = 1 + 8 + 8 + 32 + 1

// ErrBadOffer reports an Offer that does not decode or makes no sense.
var ErrBadOffer = errors.New("bad state offer")

// Offer names a state blob a donor serves: the run and epoch it belongs
// to, the SHA-256 of the blob and its size in bytes.
type Offer struct {
	Run   string
	Epoch uint64
	Hash  [32]byte
	Size  int64
}

// String shows the run, epoch, a short hash and the size.
func (o Offer) String() string {
	return fmt.Sprintf("%s/%d/%s/%dB", o.Run, o.Epoch, hex.EncodeToString(o.Hash[:6]), o.Size)
}

// Validate checks the run id and that the size is positive.
func (o Offer) Validate() error {
	if err := netx.ValidateRunID(o.Run); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	if o.Size <= 0 {
		return fmt.Errorf("%w: size %d, want > 0", ErrBadOffer, o.Size)
	}
	return nil
}

// Marshal encodes o compactly:
//
//	version u8 | epoch u64 | size u64 | hash [32]byte | runLen u8 | run
//
// all integers big-endian. It fails on an offer that Validate rejects.
func (o Offer) Marshal() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, offerFixedLen+len(o.Run))
	b = append(b, offerVersion)
	b = binary.BigEndian.AppendUint64(b, o.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Size))
	b = append(b, o.Hash[:]...)
	b = append(b, byte(len(o.Run)))
	return append(b, o.Run...), nil
}

// UnmarshalOffer decodes what Marshal wrote. It is strict: the length must
// match exactly, and the decoded offer must pass Validate.
func UnmarshalOffer(b []byte) (Offer, error) {
	if len(b) < offerFixedLen {
		return Offer{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrBadOffer, len(b), offerFixedLen)
	}
	if b[0] != offerVersion {
		return Offer{}, fmt.Errorf("%w: version %d, want %d", ErrBadOffer, b[0], offerVersion)
	}
	var o Offer
	o.Epoch = binary.BigEndian.Uint64(b[1:9])
	size := binary.BigEndian.Uint64(b[9:17])
	if size > 1<<62 {
		return Offer{}, fmt.Errorf("%w: size %d out of range", ErrBadOffer, size)
	}
	o.Size = int64(size)
	copy(o.Hash[:], b[17:49])
	runLen := int(b[49])
	if len(b) != offerFixedLen+runLen {
		return Offer{}, fmt.Errorf("%w: %d bytes for a %d-byte run id, want %d", ErrBadOffer, len(b), runLen, offerFixedLen+runLen)
	}
	o.Run = string(b[offerFixedLen:])
	if err := o.Validate(); err != nil {
		return Offer{}, err
	}
	return o, nil
}
