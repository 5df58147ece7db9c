// event_service: an event-driven order pipeline, each service a set of coroutines that
// react to one kind of event and emit the next (asyncio services wired by events).
// Coroutine style, with one request/reply step.
//
//   driver --orders.created--> inventory --inventory.reserved--> billing
//                                                                  |  request/reply
//                                                                  +--> pricing.quote
//   driver <--orders.shipped-- shipping <--payment.captured--------+
//
// Every service has its own connection, as it would in its own process, and subscribes
// in a queue group, so more replicas of it could share the load. Each event gets a
// coroutine of its own (asyncio's create_task per message): billing waiting for a price
// never holds up the next order.
//
// Run it against a broker (scripts/run.sh starts one on port 4700):
//   build/examples/event_service --orders 10
// With --without-pricing nobody answers the price lookups: the broker says
// no_responders at once, and the example fails fast instead of waiting for a timeout.

#include <chrono>
#include <cstdint>
#include <exception>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/async_latch.hpp"
#include "common/command_line.hpp"
#include "tidings/asio.hpp"
#include "tidings/client/connection.hpp"
#include "tidings/protocol/errors.hpp"

namespace {

namespace asio = tidings::asio;
namespace client = tidings::client;
using tidings::examples::async_latch;
using json = nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct product {
  std::string_view sku;
  std::int64_t unit_cents;
};

// The pricing service's price list. The driver knows it too, only to check the bills.
constexpr product catalog[] = {{"widget", 250}, {"gadget", 1200}, {"gizmo", 725}};

// Order n: which product and how many, fixed so every run can be checked.
const product& product_of(int order) {
  return catalog[static_cast<std::size_t>(order) % 3];
}
int quantity_of(int order) {
  return 1 + order % 4;
}

std::string money(std::int64_t cents) {
  std::ostringstream text;
  text << cents / 100 << "." << std::setw(2) << std::setfill('0') << cents % 100;
  return text.str();
}

// The error and, for the broker's errors, its wire code (e.g. no_responders).
std::string explain(const client::error_code& ec) {
  std::string text = ec.message();
  if (client::is_server_error(ec)) {
    const auto code = std::string(tidings::protocol::wire_name(client::server_code(ec)));
    if (text.find(code) == std::string::npos) text += " (" + code + ")";
  }
  return text;
}

std::string describe(std::exception_ptr failure) {
  try {
    std::rethrow_exception(std::move(failure));
  } catch (const boost::system::system_error& e) {
    return explain(e.code());
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

// An event's fields; an event that lacks one is not ours and is reported, not trusted.
struct order_event {
  int order = -1;
  std::string sku;
  int quantity = 0;
  std::int64_t amount_cents = 0;
};

std::optional<order_event> read_event(std::string_view data) {
  const auto body = json::parse(data, nullptr, false);
  if (!body.is_object()) return std::nullopt;
  const auto order = body.find("order");
  const auto sku = body.find("sku");
  const auto quantity = body.find("quantity");
  if (order == body.end() || !order->is_number_integer() || sku == body.end() ||
      !sku->is_string() || quantity == body.end() || !quantity->is_number_integer()) {
    return std::nullopt;
  }
  order_event event{order->get<int>(), sku->get<std::string>(), quantity->get<int>(), 0};
  if (const auto amount = body.find("amount_cents");
      amount != body.end() && amount->is_number_integer()) {
    event.amount_cents = amount->get<std::int64_t>();
  }
  return event;
}

json to_json(const order_event& event) {
  json body{{"order", event.order}, {"sku", event.sku}, {"quantity", event.quantity}};
  if (event.amount_cents != 0) body["amount_cents"] = event.amount_cents;
  return body;
}

// Everything the asynchronous work refers to lives here, owned by main(): it outlives
// io_context::run(), so no completion can reach a destroyed object.
struct event_service {
  event_service(asio::any_io_executor executor, client::options settings, int order_count)
      : orders(order_count),
        base(std::move(settings)),
        prefix(tidings::examples::run_prefix("event_service")),
        created_topic(prefix + ".orders.created"),
        reserved_topic(prefix + ".inventory.reserved"),
        captured_topic(prefix + ".payment.captured"),
        shipped_topic(prefix + ".orders.shipped"),
        quote_topic(prefix + ".pricing.quote"),
        driver(executor, connection_settings("driver")),
        inventory(executor, connection_settings("inventory")),
        billing(executor, connection_settings("billing")),
        shipping(executor, connection_settings("shipping")),
        pricing(executor, connection_settings("pricing")),
        all_shipped(executor, static_cast<std::size_t>(order_count)),
        shipped_count(static_cast<std::size_t>(order_count), 0) {
    for (const auto& item : catalog)
      stock[std::string(item.sku)] = 1'000'000;
  }

  // Lost connections are not retried: core delivery is at most once, so an event lost
  // meanwhile would leave its order unshipped. Better to say so at once than to time out.
  client::options connection_settings(const std::string& role) {
    client::options settings = base;
    settings.name = "event_service/" + role;
    settings.reconnect.enabled = false;
    settings.on_disconnected = [this, role](const client::error_code& ec) {
      if (!finishing) fail(role + " lost its connection: " + explain(ec));
    };
    settings.on_error = [this, role](const client::error& e) {
      fail(role + " got an error from the broker: " + explain(e.code) + " " + e.message);
    };
    return settings;
  }

  void fail(std::string reason) {
    if (failure) return;
    failure = std::move(reason);
    std::cerr << "error: " << *failure << "\n";
    all_shipped.abort();
  }

  void close_all() {
    finishing = true;
    for (auto* connection : {&driver, &inventory, &billing, &shipping, &pricing})
      connection->close();
  }

  int orders;
  client::options base;
  std::string prefix;
  std::string created_topic;
  std::string reserved_topic;
  std::string captured_topic;
  std::string shipped_topic;
  std::string quote_topic;
  client::connection driver;
  client::connection inventory;
  client::connection billing;
  client::connection shipping;
  client::connection pricing;
  std::vector<client::subscription> subscriptions;
  async_latch all_shipped;
  std::vector<int> shipped_count;
  std::map<std::string, std::int64_t> stock;  // the inventory service's own state
  std::optional<std::string> failure;
  bool finishing = false;
};

// Emits `event` on `topic` from `service`; false (after failing the run) when refused.
bool emit(event_service& s, client::connection& service, const std::string& topic,
          const order_event& event) {
  if (const auto ec = service.publish(topic, to_json(event).dump())) {
    s.fail("cannot publish order " + std::to_string(event.order) + " on " + topic + ": " +
           explain(ec));
    return false;
  }
  return true;
}

// --- The reactions: one coroutine per event ---------------------------------------------

asio::awaitable<void> reserve_stock(event_service& s, client::message message) {
  const auto event = read_event(message.data);
  if (!event) co_return s.fail("inventory: malformed event " + message.data);
  auto& units = s.stock[event->sku];
  if (units < event->quantity) co_return s.fail("inventory: out of " + event->sku);
  units -= event->quantity;
  std::cout << "inventory: reserved " << event->quantity << " x " << event->sku << " for order "
            << event->order << "\n";
  emit(s, s.inventory, s.reserved_topic, *event);
}

asio::awaitable<void> capture_payment(event_service& s, client::message message) {
  auto event = read_event(message.data);
  if (!event) co_return s.fail("billing: malformed event " + message.data);

  // The request/reply step: the price comes from the pricing service, asked through the
  // broker. async_request makes a reply topic, subscribes to it and waits for the first
  // answer; with no responder at all the broker says no_responders at once.
  // (Built before the co_await: g++ 12 cannot keep an initializer list alive across one.)
  const auto question = json{{"sku", event->sku}}.dump();
  client::error_code ec;
  const auto reply = co_await s.billing.async_request(
      s.quote_topic, question, 5s, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return s.fail("billing: price lookup for order " + std::to_string(event->order) +
                     " failed: " + explain(ec));
  }
  const auto quote = json::parse(reply.data, nullptr, false);
  const auto unit = quote.is_object() ? quote.find("unit_cents") : quote.end();
  if (!quote.is_object() || unit == quote.end() || !unit->is_number_integer()) {
    co_return s.fail("billing: no price for " + event->sku + ": " + reply.data);
  }
  event->amount_cents = unit->get<std::int64_t>() * event->quantity;
  std::cout << "billing:   charged " << money(event->amount_cents) << " for order " << event->order
            << "\n";
  emit(s, s.billing, s.captured_topic, *event);
}

asio::awaitable<void> ship(event_service& s, client::message message) {
  const auto event = read_event(message.data);
  if (!event) co_return s.fail("shipping: malformed event " + message.data);
  std::cout << "shipping:  shipped order " << event->order << "\n";
  emit(s, s.shipping, s.shipped_topic, *event);
}

// Subscribes `service` to `topic` in the queue group `group`, and runs `reaction` as a
// coroutine of its own for every event.
template <class Reaction>
asio::awaitable<void> react(event_service& s, client::connection& service, const std::string& topic,
                            std::string_view group, Reaction reaction) {
  const client::subscribe_options in_group{.queue = group};
  s.subscriptions.push_back(co_await service.async_subscribe(
      topic,
      [&s, &service, reaction](const client::message_view& event) {
        // The view dies with this call: the coroutine gets its own copy.
        asio::co_spawn(service.get_executor(), reaction(s, client::message(event)),
                       [&s](std::exception_ptr e) {
                         if (e) s.fail("a reaction failed: " + describe(e));
                       });
      },
      in_group, asio::use_awaitable));
}

// The pricing service answers requests with a plain callback: a lookup needs no coroutine.
asio::awaitable<void> serve_prices(event_service& s) {
  const client::subscribe_options in_group{.queue = "pricing"};
  s.subscriptions.push_back(co_await s.pricing.async_subscribe(
      s.quote_topic,
      [&s](const client::message_view& request) {
        if (request.reply.empty()) return;  // not a request: nobody to answer
        const auto body = json::parse(request.data, nullptr, false);
        const auto sku = body.is_object() ? body.find("sku") : body.end();
        json answer{{"error", "unknown sku"}};
        for (const auto& item : catalog) {
          if (sku != body.end() && sku->is_string() && sku->get<std::string>() == item.sku) {
            answer = json{{"sku", item.sku}, {"unit_cents", item.unit_cents}};
          }
        }
        if (const auto ec = s.pricing.publish(request.reply, answer.dump())) {
          s.fail("pricing: cannot reply: " + explain(ec));
        }
      },
      in_group, asio::use_awaitable));
}

// --- The driver ---------------------------------------------------------------------------

asio::awaitable<int> run(event_service& s, bool with_pricing, std::chrono::seconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  std::cout << "event_service: " << s.orders << " orders via "
            << tidings::examples::server_name(s.base) << " (topics under " << s.prefix << ".)\n";
  std::string step = "connecting";
  try {
    for (auto* connection : {&s.driver, &s.inventory, &s.billing, &s.shipping, &s.pricing})
      co_await connection->async_connect(asio::use_awaitable);

    // Every subscription is confirmed by the broker before the first order goes out, so
    // no event can be published before the service that reacts to it is listening.
    step = "subscribing";
    const client::subscribe_options plain;
    if (with_pricing) co_await serve_prices(s);
    co_await react(s, s.inventory, s.created_topic, "inventory", reserve_stock);
    co_await react(s, s.billing, s.reserved_topic, "billing", capture_payment);
    co_await react(s, s.shipping, s.captured_topic, "shipping", ship);
    s.subscriptions.push_back(co_await s.driver.async_subscribe(
        s.shipped_topic,
        [&s](const client::message_view& message) {
          const auto event = read_event(message.data);
          if (!event || event->order < 0 || event->order >= s.orders) {
            return s.fail("driver: a shipment of no order of this run: " +
                          std::string(message.data));
          }
          const auto expected = product_of(event->order).unit_cents * quantity_of(event->order);
          if (event->amount_cents != expected) {
            return s.fail("driver: order " + std::to_string(event->order) + " was billed " +
                          money(event->amount_cents) + ", not " + money(expected));
          }
          if (++s.shipped_count[static_cast<std::size_t>(event->order)] > 1) {
            return s.fail("driver: order " + std::to_string(event->order) + " shipped twice");
          }
          s.all_shipped.count_down();
        },
        plain, asio::use_awaitable));
    std::cout << "services subscribed: inventory, billing, shipping"
              << (with_pricing ? ", pricing" : " (no pricing)") << "\n";

    // Confirmed publishes: each completes on the broker's `ok`, so a refused order
    // (say, a bad topic) would be reported here and not lost.
    step = "placing orders";
    const client::publish_options no_extras;
    for (int order = 0; order < s.orders && !s.failure; ++order) {
      const order_event created{order, std::string(product_of(order).sku), quantity_of(order), 0};
      const auto body = to_json(created).dump();
      co_await s.driver.async_publish(s.created_topic, body, no_extras, asio::use_awaitable);
    }
  } catch (const boost::system::system_error& e) {
    s.fail(step == "connecting" ? tidings::examples::cannot_connect(s.base, e.code())
                                : step + " failed: " + explain(e.code()));
    co_return tidings::examples::exit_failure;
  }
  if (s.failure) co_return tidings::examples::exit_failure;
  std::cout << "driver:    placed " << s.orders << " orders\n";

  if (!co_await s.all_shipped.wait_until(deadline)) {
    if (!s.failure) {
      std::string missing;
      for (int order = 0; order < s.orders; ++order) {
        if (s.shipped_count[static_cast<std::size_t>(order)] == 0)
          missing += " " + std::to_string(order);
      }
      s.fail(std::to_string(s.all_shipped.remaining()) + " orders not shipped within " +
             std::to_string(timeout.count()) + "s:" + missing);
    }
    co_return tidings::examples::exit_failure;
  }
  std::int64_t total = 0;
  for (int order = 0; order < s.orders; ++order)
    total += product_of(order).unit_cents * quantity_of(order);
  std::cout << "all " << s.orders << " orders shipped, " << money(total) << " billed\n";
  co_return tidings::examples::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  int orders = 10;
  int timeout_s = 30;
  bool without_pricing = false;
  client::options settings;
  if (const auto stop = tidings::examples::parse_command_line(
          argc, argv,
          "Orders flow through inventory, billing (with a price lookup by request/reply) and "
          "shipping, each a service reacting to events; the driver waits until all are shipped.",
          {{.name = "--orders",
            .help = "orders to place",
            .number = &orders,
            .min = 1,
            .max = 100000},
           {.name = "--timeout",
            .help = "seconds to wait for every shipment",
            .number = &timeout_s,
            .min = 1,
            .max = 3600},
           {.name = "--without-pricing",
            .help = "start no pricing service (shows no_responders)",
            .toggle = &without_pricing}},
          settings)) {
    return *stop;
  }

  // Progress shows at once, even through a pipe (a test or `| tee` watching for it).
  std::cout << std::unitbuf;
  // One thread runs every connection (a connection is not thread-safe), so the
  // services' state needs no locks.
  asio::io_context io;
  event_service s(io.get_executor(), settings, orders);
  int exit_code = tidings::examples::exit_failure;
  asio::co_spawn(io, run(s, !without_pricing, std::chrono::seconds(timeout_s)),
                 [&](std::exception_ptr e, int code) {
                   if (e) s.fail("the driver failed: " + describe(e));
                   exit_code = e ? tidings::examples::exit_failure : code;
                   // io.run() returns once no connection is left open.
                   s.close_all();
                 });
  io.run();
  return s.failure ? tidings::examples::exit_failure : exit_code;
}
