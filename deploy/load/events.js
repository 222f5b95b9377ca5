// Artillery processor for load-test-events.yml: each event carries the moment it is sent, as an app's would.
module.exports = {
  stampEventTime(requestParams, context, events, next) {
    requestParams.json.event_time = new Date().toISOString();
    return next();
  },
};
