#include "messages/registry.hpp"

#include <vector>

#include "messages/errc.hpp"
#include "messages/types.hpp"

namespace nova {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<envelope>("nova::envelope");
  cfg.add_message_type<std::vector<envelope>>("std::vector<nova::envelope>");
  cfg.add_message_type<task>("nova::task");
  cfg.add_message_type<std::vector<task>>("std::vector<nova::task>");
  cfg.add_message_type<task_result>("nova::task_result");
  cfg.add_message_type<std::vector<task_result>>(
    "std::vector<nova::task_result>");
  cfg.add_message_type<presence>("nova::presence");
  cfg.add_message_type<std::vector<presence>>("std::vector<nova::presence>");
  cfg.add_message_type<event>("nova::event");
  cfg.add_message_type<queue_stats>("nova::queue_stats");
  cfg.add_message_type<enqueue_results>("nova::enqueue_results");
  cfg.add_message_type<kind>("nova::kind");
  cfg.add_message_type<priority>("nova::priority");
  cfg.add_message_type<presence_status>("nova::presence_status");
  cfg.add_error_category(errc_category,
                         [](uint8_t code, caf::atom_value,
                            const caf::message& ctx) -> std::string {
                           return describe(caf::error{code, errc_category,
                                                      ctx});
                         });
}

} // namespace nova
