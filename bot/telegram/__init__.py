"""bot.telegram"""
