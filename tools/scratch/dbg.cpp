#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include <iostream>
template <class Body>
std::string in_actor(weave::runtime& rt, Body body) {
  caf::scoped_actor test{rt.system()};
  caf::actor reply = test;
  rt.system().spawn([body, reply](caf::event_based_actor* self) mutable {
    body(self, reply);
  });
  std::string result = "<no answer>";
  test->receive([&](std::string& s) { result = std::move(s); },
                caf::after(std::chrono::seconds(3)) >>
                  [&] { result = "<timeout in test>"; });
  return result;
}
int main() {
  weave::runtime rt;
  auto out = in_actor(rt, [](caf::event_based_actor* self, caf::actor reply) {
    self->attach_functor([](const caf::error& e){ std::cerr << "actor down: " << caf::to_string(e) << std::endl; });
    self->set_default_handler([](caf::scheduled_actor*, caf::message_view& m) -> caf::result<caf::message> { std::cerr << "default handler: " << caf::to_string(m.content()) << std::endl; return caf::sec::unexpected_message; });
    weave::offload(self, [] { std::cerr << "job\n"; }).then([=] {
      std::cerr << "void ok\n";
      self->send(reply, std::string("x"));
    });
  });
  std::cerr << out << std::endl;
}
