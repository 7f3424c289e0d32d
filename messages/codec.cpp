#include "messages/codec.hpp"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "messages/errc.hpp"

namespace nova {

namespace {

// Enum values on the wire are the C++ values shifted by the UNSPECIFIED slot,
// which both sides keep at zero.
v1::Kind wire(kind x) {
  return static_cast<v1::Kind>(static_cast<int>(x));
}

v1::Priority wire(priority x) {
  return static_cast<v1::Priority>(static_cast<int>(x));
}

v1::PresenceStatus wire(presence_status x) {
  return static_cast<v1::PresenceStatus>(static_cast<int>(x));
}

caf::error bad(const char* what, int value) {
  return make_error(errc::decode_failed,
                    std::string{what} + " out of range: "
                      + std::to_string(value));
}

caf::expected<kind> from_wire(v1::Kind x) {
  if (x == v1::KIND_UNSPECIFIED)
    return kind::direct;
  if (x < v1::KIND_DIRECT || x > v1::KIND_EMERGENCY)
    return bad("kind", x);
  return static_cast<kind>(x);
}

caf::expected<priority> from_wire(v1::Priority x) {
  if (x == v1::PRIORITY_UNSPECIFIED)
    return priority::normal;
  if (x < v1::PRIORITY_LOW || x > v1::PRIORITY_URGENT)
    return bad("priority", x);
  return static_cast<priority>(x);
}

caf::expected<presence_status> from_wire(v1::PresenceStatus x) {
  if (x == v1::PRESENCE_STATUS_UNSPECIFIED)
    return presence_status::online;
  if (x < v1::PRESENCE_STATUS_ONLINE || x > v1::PRESENCE_STATUS_OFFLINE)
    return bad("presence status", x);
  return static_cast<presence_status>(x);
}

template <class Map>
nova::headers to_headers(const Map& m) {
  return nova::headers(m.begin(), m.end());
}

template <class Map>
void put_headers(Map* m, const nova::headers& hs) {
  for (const auto& [k, v] : hs)
    (*m)[k] = v;
}

} // namespace

v1::Envelope to_proto(const envelope& x) {
  v1::Envelope out;
  out.set_id(x.id.data(), x.id.size());
  out.set_from(x.from);
  out.set_to(x.to);
  out.set_kind(wire(x.kind));
  out.set_priority(wire(x.priority));
  out.set_correlation_id(x.correlation_id.data(), x.correlation_id.size());
  out.set_created_at(x.created_at);
  out.set_subject(x.subject);
  out.set_content_type(x.content_type);
  out.set_payload(x.payload);
  put_headers(out.mutable_headers(), x.headers);
  return out;
}

v1::Task to_proto(const task& x) {
  v1::Task out;
  out.set_id(x.id);
  out.set_session(x.session);
  out.set_type(x.type);
  out.set_priority(wire(x.priority));
  out.set_payload(x.payload);
  out.set_created_by(x.created_by);
  out.set_created_at(x.created_at);
  out.set_attempts(x.attempts);
  out.set_max_attempts(x.max_attempts);
  out.set_last_error(x.last_error);
  put_headers(out.mutable_headers(), x.headers);
  return out;
}

v1::TaskResult to_proto(const task_result& x) {
  v1::TaskResult out;
  out.set_task_id(x.task_id);
  out.set_session(x.session);
  out.set_status(static_cast<v1::TaskResult::Status>(x.status));
  out.set_worker(x.worker);
  out.set_payload(x.payload);
  out.set_error(x.error);
  out.set_attempts(x.attempts);
  out.set_completed_at(x.completed_at);
  return out;
}

v1::Presence to_proto(const presence& x) {
  v1::Presence out;
  out.set_nova_id(x.nova_id);
  out.set_node_id(x.node_id);
  out.set_status(wire(x.status));
  for (const auto& c : x.capabilities)
    out.add_capabilities(c);
  out.set_current_task(x.current_task);
  out.set_last_seen(x.last_seen);
  out.set_started_at(x.started_at);
  for (const auto& g : x.groups)
    out.add_groups(g);
  return out;
}

v1::Event to_proto(const event& x) {
  v1::Event out;
  out.set_id(x.id);
  out.set_source(x.source);
  out.set_subject(x.subject);
  out.set_domain(x.domain);
  out.set_action(x.action);
  out.set_created_at(x.created_at);
  out.set_content_type(x.content_type);
  out.set_payload(x.payload);
  put_headers(out.mutable_headers(), x.headers);
  return out;
}

caf::expected<envelope> from_proto(const v1::Envelope& x) {
  auto k = from_wire(x.kind());
  if (!k)
    return k.error();
  auto p = from_wire(x.priority());
  if (!p)
    return p.error();
  if (x.id().size() > msg_id::capacity
      || x.correlation_id().size() > msg_id::capacity)
    return make_error(errc::decode_failed,
                      "envelope id or correlation id longer than "
                        + std::to_string(msg_id::capacity) + " characters");
  envelope out;
  out.id = x.id();
  out.from = x.from();
  out.to = x.to();
  out.kind = *k;
  out.priority = *p;
  out.correlation_id = x.correlation_id();
  out.created_at = x.created_at();
  out.subject = x.subject();
  out.content_type = x.content_type();
  out.payload = x.payload();
  out.headers = to_headers(x.headers());
  return out;
}

caf::expected<task> from_proto(const v1::Task& x) {
  auto p = from_wire(x.priority());
  if (!p)
    return p.error();
  task out;
  out.id = x.id();
  out.session = x.session();
  out.type = x.type();
  out.priority = *p;
  out.payload = x.payload();
  out.created_by = x.created_by();
  out.created_at = x.created_at();
  out.attempts = x.attempts();
  out.max_attempts = x.max_attempts();
  out.last_error = x.last_error();
  out.headers = to_headers(x.headers());
  return out;
}

caf::expected<task_result> from_proto(const v1::TaskResult& x) {
  if (x.status() < v1::TaskResult::STATUS_DONE
      || x.status() > v1::TaskResult::STATUS_DEAD)
    return bad("task status", x.status());
  task_result out;
  out.task_id = x.task_id();
  out.session = x.session();
  out.status = static_cast<task_status>(x.status());
  out.worker = x.worker();
  out.payload = x.payload();
  out.error = x.error();
  out.attempts = x.attempts();
  out.completed_at = x.completed_at();
  return out;
}

caf::expected<presence> from_proto(const v1::Presence& x) {
  auto s = from_wire(x.status());
  if (!s)
    return s.error();
  presence out;
  out.nova_id = x.nova_id();
  out.node_id = x.node_id();
  out.status = *s;
  out.capabilities.assign(x.capabilities().begin(), x.capabilities().end());
  out.current_task = x.current_task();
  out.last_seen = x.last_seen();
  out.started_at = x.started_at();
  out.groups.assign(x.groups().begin(), x.groups().end());
  return out;
}

caf::expected<event> from_proto(const v1::Event& x) {
  event out;
  out.id = x.id();
  out.source = x.source();
  out.subject = x.subject();
  out.domain = x.domain();
  out.action = x.action();
  out.created_at = x.created_at();
  out.content_type = x.content_type();
  out.payload = x.payload();
  out.headers = to_headers(x.headers());
  return out;
}

namespace {

void put_varint(std::string& out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

void put_tag(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (field << 3) | wire_type);
}

void put_bytes(std::string& out, uint32_t field, std::string_view x) {
  if (x.empty())
    return; // proto3 omits defaults
  put_tag(out, field, 2);
  put_varint(out, x.size());
  out.append(x.data(), x.size());
}

void put_int(std::string& out, uint32_t field, int64_t x) {
  if (x == 0)
    return;
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(x));
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

} // namespace

std::string encode(const envelope& x) {
  std::string out;
  encode_to(x, out);
  return out;
}

void encode_to(const envelope& x, std::string& out) {
  out.reserve(out.size() + 96 + x.id.size() + x.from.size() + x.to.size()
              + x.correlation_id.size() + x.subject.size()
              + x.content_type.size() + x.payload.size());
  put_bytes(out, 1, x.id.view());
  put_bytes(out, 2, x.from);
  put_bytes(out, 3, x.to);
  put_int(out, 4, static_cast<int64_t>(x.kind));
  put_int(out, 5, static_cast<int64_t>(x.priority));
  put_bytes(out, 6, x.correlation_id.view());
  put_int(out, 7, x.created_at);
  put_bytes(out, 8, x.subject);
  put_bytes(out, 9, x.content_type);
  put_bytes(out, 10, x.payload);
  for (const auto& [k, v] : x.headers) {
    // A map entry is a message with the key as field 1, the value as 2.
    size_t len = 0;
    if (!k.empty())
      len += 1 + varint_size(k.size()) + k.size();
    if (!v.empty())
      len += 1 + varint_size(v.size()) + v.size();
    put_tag(out, 11, 2);
    put_varint(out, len);
    put_bytes(out, 1, k);
    put_bytes(out, 2, v);
  }
}

namespace {

template <class T>
struct proto_of;
template <>
struct proto_of<envelope> { using type = v1::Envelope; };
template <>
struct proto_of<task> { using type = v1::Task; };
template <>
struct proto_of<task_result> { using type = v1::TaskResult; };
template <>
struct proto_of<presence> { using type = v1::Presence; };
template <>
struct proto_of<event> { using type = v1::Event; };

// With ignore_unknown_fields, protobuf also drops enum names it does not
// know, leaving the field UNSPECIFIED: a newer peer's kind would silently
// become `direct`. Reject those as `decode` rejects unknown enum numbers.
caf::error check_enum_names(const google::protobuf::Descriptor* type,
                            std::string_view json) {
  google::protobuf::Struct root;
  auto st = google::protobuf::util::JsonStringToMessage(
    google::protobuf::StringPiece{json.data(), json.size()}, &root);
  if (!st.ok())
    return caf::none;
  for (const auto& [key, value] : root.fields()) {
    if (value.kind_case() != google::protobuf::Value::kStringValue)
      continue;
    for (int i = 0; i < type->field_count(); ++i) {
      const auto* field = type->field(i);
      if (field->enum_type() == nullptr
          || (key != field->json_name() && key != field->name()))
        continue;
      if (field->enum_type()->FindValueByName(value.string_value())
          == nullptr)
        return make_error(errc::decode_failed,
                          "unknown " + field->full_name() + " value '"
                            + value.string_value().substr(0, 80) + "'");
    }
  }
  return caf::none;
}

} // namespace

template <class T>
caf::expected<T> decode(std::string_view bytes) {
  typename proto_of<T>::type msg;
  if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(errc::decode_failed,
                      "malformed protobuf " + msg.GetTypeName() + " ("
                        + std::to_string(bytes.size()) + " bytes)");
  return from_proto(msg);
}

template <class T>
std::string to_json(const T& x) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = false;
  auto st = google::protobuf::util::MessageToJsonString(to_proto(x), &out,
                                                        opts);
  static_cast<void>(st); // Printing a well-formed message cannot fail.
  return out;
}

template <class T>
caf::expected<T> from_json(std::string_view json) {
  typename proto_of<T>::type msg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(
    google::protobuf::StringPiece{json.data(), json.size()}, &msg, opts);
  if (!st.ok())
    return make_error(errc::decode_failed,
                      "invalid " + msg.GetTypeName()
                        + " JSON: " + std::string{st.message()});
  if (auto err = check_enum_names(msg.GetDescriptor(), json))
    return err;
  return from_proto(msg);
}

namespace {

/// A cursor over protobuf wire bytes; every read is bounds-checked.
struct wire_reader {
  std::string_view in;
  size_t pos = 0;

  bool varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= in.size())
        return false;
      auto b = static_cast<uint8_t>(in[pos++]);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0)
        return true;
    }
    return false;
  }

  bool bytes(std::string_view& out) {
    uint64_t len = 0;
    if (!varint(len) || len > in.size() - pos)
      return false;
    out = in.substr(pos, len);
    pos += len;
    return true;
  }

  bool skip(uint32_t wire_type) {
    uint64_t v = 0;
    std::string_view b;
    switch (wire_type) {
      case 0: return varint(v);
      case 1: return (pos += 8) <= in.size();
      case 2: return bytes(b);
      case 5: return (pos += 4) <= in.size();
      default: return false;
    }
  }
};

caf::error malformed_envelope(const char* why) {
  return make_error(errc::decode_failed,
                    std::string{"malformed protobuf nova.v1.Envelope: "}
                      + why);
}

} // namespace

template <>
caf::expected<envelope> decode<envelope>(std::string_view bytes) {
  envelope out;
  if (auto err = decode_into(bytes, out))
    return err;
  return out;
}

caf::error decode_into(std::string_view bytes, envelope& out) {
  wire_reader r{bytes};
  uint64_t kind_raw = 0;
  uint64_t prio_raw = 0;
  while (r.pos < bytes.size()) {
    uint64_t tag = 0;
    if (!r.varint(tag))
      return malformed_envelope("truncated tag");
    auto field = static_cast<uint32_t>(tag >> 3);
    auto wt = static_cast<uint32_t>(tag & 7);
    if (field == 0 || tag >> 32 != 0)
      return malformed_envelope("invalid field number");
    bool is_len = wt == 2;
    bool is_var = wt == 0;
    std::string_view b;
    uint64_t v = 0;
    switch (field) {
      case 1:
      case 6:
        if (!is_len || !r.bytes(b))
          return malformed_envelope("bad id field");
        if (b.size() > msg_id::capacity)
          return make_error(errc::decode_failed,
                            "envelope id or correlation id longer than "
                              + std::to_string(msg_id::capacity)
                              + " characters");
        (field == 1 ? out.id : out.correlation_id) = b;
        break;
      case 2:
      case 3:
      case 8:
      case 9:
      case 10: {
        if (!is_len || !r.bytes(b))
          return malformed_envelope("bad string field");
        auto& dst = field == 2   ? out.from
                    : field == 3 ? out.to
                    : field == 8 ? out.subject
                    : field == 9 ? out.content_type
                                 : out.payload;
        dst.assign(b.data(), b.size());
        break;
      }
      case 4:
      case 5:
      case 7:
        if (!is_var || !r.varint(v))
          return malformed_envelope("bad number field");
        if (field == 4)
          kind_raw = v;
        else if (field == 5)
          prio_raw = v;
        else
          out.created_at = static_cast<int64_t>(v);
        break;
      case 11: {
        if (!is_len || !r.bytes(b))
          return malformed_envelope("bad header entry");
        wire_reader e{b};
        std::string key;
        std::string value;
        while (e.pos < b.size()) {
          uint64_t etag = 0;
          if (!e.varint(etag))
            return malformed_envelope("truncated header entry");
          std::string_view x;
          if ((etag >> 3) == 1 && (etag & 7) == 2 && e.bytes(x))
            key.assign(x.data(), x.size());
          else if ((etag >> 3) == 2 && (etag & 7) == 2 && e.bytes(x))
            value.assign(x.data(), x.size());
          else if (!e.skip(static_cast<uint32_t>(etag & 7)))
            return malformed_envelope("bad header entry");
        }
        out.headers[std::move(key)] = std::move(value);
        break;
      }
      default:
        // Fields of newer peers: skip them, as protobuf does.
        if (!r.skip(wt))
          return malformed_envelope("truncated unknown field");
    }
  }
  auto k = from_wire(static_cast<v1::Kind>(static_cast<int>(kind_raw)));
  if (kind_raw > 0xffff || !k)
    return bad("kind", static_cast<int>(kind_raw & 0x7fffffff));
  auto p = from_wire(static_cast<v1::Priority>(static_cast<int>(prio_raw)));
  if (prio_raw > 0xffff || !p)
    return bad("priority", static_cast<int>(prio_raw & 0x7fffffff));
  out.kind = *k;
  out.priority = *p;
  return caf::none;
}

#define NOVA_CODEC_INSTANTIATE(T)                                              \
  template caf::expected<T> decode<T>(std::string_view);                       \
  template std::string to_json<T>(const T&);                                   \
  template caf::expected<T> from_json<T>(std::string_view);

template std::string to_json<envelope>(const envelope&);
template caf::expected<envelope> from_json<envelope>(std::string_view);
NOVA_CODEC_INSTANTIATE(task)
NOVA_CODEC_INSTANTIATE(task_result)
NOVA_CODEC_INSTANTIATE(presence)
NOVA_CODEC_INSTANTIATE(event)

} // namespace nova
