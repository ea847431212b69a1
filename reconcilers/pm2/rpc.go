package pm2

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// monitorData asks the PM2 daemon for its process list over its RPC socket
// (PM2_HOME/rpc.sock), the call `pm2 jlist` itself makes. It saves a node
// process (~170 ms, most of a color switch); any failure here falls back to
// `pm2 jlist`, so this is a fast path, never the only path.
//
// The wire format is PM2's axon + amp framing: one byte (version<<4 | argc),
// then per argument a big-endian uint32 length and the bytes, each argument
// prefixed "j:" (JSON) or "s:" (string). A request is [j:{call}, s:id]; the
// reply is [j:{"args":[list]} or {"error":...}, s:id].
func (r *Reconciler) monitorData(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := r.Host.DialContext(ctx, "unix", filepath.Join(r.D.PM2.Home, "rpc.sock"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	call, _ := json.Marshal(map[string]any{"type": "call", "method": "getMonitorData", "args": []any{map[string]any{}}})
	const id = "settle:1"
	if _, err := conn.Write(ampEncode([]byte("j:"+string(call)), []byte("s:"+id))); err != nil {
		return nil, err
	}
	args, err := ampDecode(bufio.NewReader(conn))
	if err != nil {
		return nil, fmt.Errorf("read pm2 rpc reply: %w", err)
	}
	if len(args) != 2 || string(args[1]) != "s:"+id || len(args[0]) < 2 || string(args[0][:2]) != "j:" {
		return nil, fmt.Errorf("unexpected pm2 rpc reply shape")
	}
	var reply struct {
		Args  []json.RawMessage `json:"args"`
		Error any               `json:"error"`
	}
	if err := json.Unmarshal(args[0][2:], &reply); err != nil {
		return nil, fmt.Errorf("decode pm2 rpc reply: %w", err)
	}
	if reply.Error != nil || len(reply.Args) == 0 {
		return nil, fmt.Errorf("pm2 rpc getMonitorData failed")
	}
	return reply.Args[0], nil
}

func ampEncode(args ...[]byte) []byte {
	out := []byte{byte(1<<4 | len(args))}
	for _, a := range args {
		out = binary.BigEndian.AppendUint32(out, uint32(len(a)))
		out = append(out, a...)
	}
	return out
}

// maxReply bounds one reply: a process list with environments is large,
// but not this large.
const maxReply = 64 << 20

func ampDecode(r *bufio.Reader) ([][]byte, error) {
	meta, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if meta>>4 != 1 {
		return nil, fmt.Errorf("amp version %d", meta>>4)
	}
	args := make([][]byte, meta&0x0f)
	var lenBuf [4]byte
	for i := range args {
		if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(lenBuf[:])
		if n > maxReply {
			return nil, fmt.Errorf("amp argument of %d bytes", n)
		}
		args[i] = make([]byte, n)
		if _, err := io.ReadFull(r, args[i]); err != nil {
			return nil, err
		}
	}
	return args, nil
}
