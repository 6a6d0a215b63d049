package token

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
)

// sealedState is the envelope of SealState.
type sealedState struct {
	Purpose string          `json:"purpose"`
	Expiry  int64           `json:"exp"`
	Data    json.RawMessage `json:"data"`
}

// SealState signs data that deputy gives a browser to bring back later (the state of
// an upstream sign-in), so that nothing the browser changes is accepted. The typ
// header (keys.StateType) keeps it from ever passing as a token. Any node verifies
// it: the keys are shared.
func (s *Service) SealState(purpose string, data any, exp time.Time) (string, error) {
	d, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(sealedState{Purpose: purpose, Expiry: exp.Unix(), Data: d})
	if err != nil {
		return "", err
	}
	return s.keys.Sign(keys.StateType, b)
}

// OpenState verifies a SealState value for purpose and decodes its data into v.
func (s *Service) OpenState(raw, purpose string, now time.Time, v any) error {
	return s.OpenStateContext(context.Background(), raw, purpose, now, v)
}

// OpenStateContext is OpenState within ctx (see VerifyContext).
func (s *Service) OpenStateContext(ctx context.Context, raw, purpose string, now time.Time, v any) error {
	if len(raw) > s.maxBytes {
		return ErrTooLarge
	}
	jws, err := jose.ParseSignedCompact(raw, s.keys.Algorithms())
	if err != nil || len(jws.Signatures) != 1 {
		return ErrMalformed
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != keys.StateType {
		return ErrType
	}
	k, ok := s.keys.LookupFresh(ctx, h.KeyID)
	if !ok {
		return ErrUnknownKey
	}
	if jose.SignatureAlgorithm(h.Algorithm) != k.Algorithm {
		return ErrAlgorithm
	}
	payload, err := jws.Verify(k.Private.Public())
	if err != nil {
		return ErrSignature
	}
	var st sealedState
	if err := json.Unmarshal(payload, &st); err != nil || st.Purpose != purpose {
		return fmt.Errorf("%w: not a %s state", ErrMalformed, purpose)
	}
	if now.Unix() >= st.Expiry {
		return ErrExpired
	}
	return json.Unmarshal(st.Data, v)
}
