// Publishes to itself through a broker and checks the round trip: proof that the
// installed headers, libraries and package config are enough to build a client.
#include <cstdlib>
#include <iostream>
#include <string>

#include <tidings/client.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer HOST:PORT\n";
    return 2;
  }
  const auto address = tidings::client::parse_server_address(argv[1]);
  if (!address) return 2;
  tidings::client::options settings;
  settings.host = address->host;
  settings.port = address->port;
  try {
    tidings::client::blocking_client client(settings);
    auto echo = client.subscribe("consumer.echo", [&](const tidings::client::message_view& request) {
      client.publish(request.reply, request.data);
    });
    const auto reply = client.request("consumer.echo", R"({"hello":"package"})", std::chrono::seconds(5));
    std::cout << "reply: " << reply.data << "\n";
    client.drain();
    return reply.data == R"({"hello":"package"})" ? EXIT_SUCCESS : EXIT_FAILURE;
  } catch (const tidings::client::exception& failure) {
    std::cerr << "consumer: " << failure.what() << "\n";
    return EXIT_FAILURE;
  }
}
