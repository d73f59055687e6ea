-- wrk script: POST a notification-sized JSON body, as notify does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "0d7c2b3e-5b0e-5c59-9a57-6c7f4a0d8e11"
wrk.headers["X-Signature"] = "t=1800000000,v1=0000000000000000000000000000000000000000000000000000000000000000"
wrk.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
wrk.body = '{"delivery_id":"0d7c2b3e-5b0e-5c59-9a57-6c7f4a0d8e11","event_id":"6a1e7c9e-3f0c-5a55-8f4b-0a1b2c3d4e5f","order_id":"ord_bench_000001","channel":"email","to":"ana@example.com","template":"order_fulfilled","data":{"event_id":"6a1e7c9e-3f0c-5a55-8f4b-0a1b2c3d4e5f","order_id":"ord_bench_000001","payment_id":"pay_bench_000001","payment_event_id":"1b2c3d4e-5f60-5172-8394-a5b6c7d8e9f0","items":[{"sku":"SKU-RED-MUG","qty":2,"stock_version":7}],"customer":{"id":"cus_77","email":"ana@example.com","phone":"+4915112345678","webhook_url":"http://127.0.0.1:1/webhook"},"fulfilled_at":"2026-11-22T10:00:01Z","payment_received_at":"2026-11-22T10:00:00Z"}}'
