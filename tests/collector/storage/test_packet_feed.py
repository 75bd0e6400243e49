"""An episode's packets come from the recorder's continuous encoder from a keyframe on, from
its own encoder before that and wherever a run breaks, and decode to every frame in order."""

import av

from collector.storage.encoder_thread import EncoderThread
from collector.storage.packet_feed import PacketFeed
from collector.storage.video import VideoEncoder, open_decoder
from tests.collector.storage.test_video import H, RATE, W, color_frame, psnr

KEYS = (0, 5, 12, 19)  # where the continuous encoder was asked for keyframes


def continuous(frames=22, keys=KEYS, **options):  # color_frame wraps after 22
    """A continuous encoder fed ``frames`` frames, keyframes at ``keys``: its thread and tickets."""
    make = lambda: VideoEncoder("h264", W, H, RATE, keyframes_by_caller=True, **options)  # noqa: E731
    thread = EncoderThread(make(), "continuous cam0/color", reopen=make)
    return thread, [thread.submit(color_frame(i), i in keys) for i in range(frames)]


def feed():
    like = VideoEncoder("h264", W, H, RATE)
    spare = [like]
    opened = []

    def open_own():
        opened.append(EncoderThread(spare.pop() if spare else VideoEncoder("h264", W, H, RATE)))
        return opened[-1]
    return PacketFeed(open_own, like, "cam0/color"), opened


def decoded(packets):
    decoder = open_decoder("h264")
    frames = []
    for packet in packets:
        frames += decoder.decode(av.Packet(packet.data.tobytes()))
    return [f.to_ndarray(format="rgb24") for f in frames + decoder.decode(None)]


def check(packets, frames):
    assert [p.pts for p in packets] == list(range(len(frames))) and packets[0].keyframe
    images = decoded(packets)
    assert len(images) == len(frames)
    assert min(psnr(image, color_frame(i)) for image, i in zip(images, frames)) > 30


def test_a_pre_roll_takes_continuous_packets_from_the_first_keyframe_on():
    shared, tickets = continuous()
    packets_feed, opened = feed()
    try:
        frames = list(range(3, 22))  # starts between keyframes (3, 4 encoded by the episode)
        for i in frames:
            packets_feed.add(color_frame(i), tickets[i])
        packets = packets_feed.ready(None) + packets_feed.finish()
        check(packets, frames)
        assert packets_feed.reused == len(frames) - 2 and len(opened) == 1
    finally:
        shared.stop()


def test_a_frame_missing_from_the_run_sends_the_episode_to_its_own_encoder_until_a_keyframe():
    shared, tickets = continuous()
    packets_feed, opened = feed()
    try:
        frames = [i for i in range(5, 22) if i != 8]  # 8 was encoded but not routed here
        for i in frames:
            packets_feed.add(color_frame(i), tickets[i])
        packets = packets_feed.finish()
        check(packets, frames)
        # 5-7 continuous, 9-11 own (a fresh encoder), 12-21 continuous again.
        assert packets_feed.reused == 3 + 10 and len(opened) == 1
    finally:
        shared.stop()


def test_a_failed_continuous_encoder_costs_no_frame():
    shared, tickets = continuous(frames=8)
    packets_feed, opened = feed()
    shared.stop()  # ended before encoding most of its frames: its tickets never complete
    frames = list(range(8))
    for i in frames:
        packets_feed.add(color_frame(i), tickets[i])
    packets = packets_feed.finish()
    check(packets, frames)
    assert packets_feed.reused == sum(t.packet is not None for t in tickets) and opened


def test_packets_of_another_quality_are_not_mixed_in():
    shared, tickets = continuous(crf=40)
    packets_feed, opened = feed()
    try:
        for i in range(10):
            packets_feed.add(color_frame(i), tickets[i])
        check(packets_feed.finish(), list(range(10)))
        assert packets_feed.reused == 0
    finally:
        shared.stop()


def test_a_continuous_encoder_failing_mid_run_hands_the_rest_to_the_episode():
    shared, tickets = continuous()
    packets_feed, opened = feed()
    assert shared.wait(tickets[8], 30)
    shared.stop()  # the frames after those it encoded never get their packets from it
    frames = list(range(3, 22))  # 3, 4 own; 5 on continuous
    for i in frames:
        packets_feed.add(color_frame(i), tickets[i])
    check(packets_feed.finish(), frames)
    assert 4 <= packets_feed.reused <= 17 and len(opened) == 2
